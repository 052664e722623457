//! The web UI and JSON API over an Estudely index (`estudely serve`, `run --serve`).
//!
//! - Pages (server-rendered HTML from askama templates in `templates/`, no JavaScript):
//!   `/`, `/search?q=&sort=&page=`, `/torrent/{infohash}`, `/recent?page=`, `/stats`.
//! - API: `/api/v1/search?q=&category=&limit=&offset=&sort=`, `/api/v1/torrents/{infohash}`,
//!   `/api/v1/stats`; `/metrics` (Prometheus) when [`WebConfig::metrics`] is set.
//! - [`torznab`]: `/torznab/api` (Torznab / Newznab, for Prowlarr, Sonarr, Radarr) and
//!   `/feed` (RSS 2.0); [`keys`]: the API keys that guard them and the JSON API.
//!
//! Safety: templates escape every string (names and paths are hostile input); a
//! Content-Security-Policy forbids scripts outright; the index is opened read-only, each
//! statement has a time limit and pages have size limits; the default address is loopback;
//! [`WebConfig::auth`] asks for HTTP basic authentication on everything.
//!
//! Load: the figures that scan the whole index (`/`, `/stats`, `/api/v1/stats`) come from
//! one cache, recomputed at most once at a time; a query holds its connection's permit
//! until it has really ended (a cancelled request does not free it while its query runs
//! on); every request has a time limit ([`REQUEST_TIMEOUT`]) and at most
//! [`MAX_REQUESTS`] are served at once, the others answered 503 at once.
//!
//! Serving an index for an hour:
//!
//! ```no_run
//! use std::sync::Arc;
//! use estudely_store::DbUrl;
//! use estudely_web::{bind, serve, AppState, WebConfig};
//!
//! # async fn example() -> anyhow::Result<()> {
//! let url = DbUrl::parse("sqlite:index.sqlite")?;
//! let config = WebConfig::default();
//! let listener = bind("127.0.0.1:8080".parse()?, config.auth.is_some()).await?;
//! let state = Arc::new(AppState::new(url, &config));
//! let shutdown = tokio::time::sleep(std::time::Duration::from_secs(3_600));
//! serve(listener, state, config.auth.clone(), shutdown).await
//! # }
//! ```
//!
//! Or answering requests without a socket, as the tests do, with [`router`] (an axum
//! `Router`, a tower `Service`).
#![deny(missing_docs)]

mod api;
mod auth;
mod db;
mod found;
pub mod keys;
mod pages;
#[cfg(test)]
mod tests;
pub mod torznab;
pub mod view;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tracing::{info, warn};

use estudely_report::Report;
use estudely_store::UsageError;
use estudely_store::{DbUrl, Stats};

pub use auth::Credentials;
pub use db::{DbError, Pool};

/// The default `--listen`: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Results per page in the UI.
pub const PAGE_SIZE: usize = 50;
/// Most results per API call.
pub const MAX_LIMIT: usize = 100;
/// Deepest offset served: beyond it, refine the query.
pub const MAX_OFFSET: usize = 10_000;
/// Longest query string searched (longer ones are cut).
pub const MAX_QUERY: usize = 200;
/// How long one statement may run.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the stats page's figures are reused before they are computed again.
pub const STATS_CACHE: Duration = Duration::from_secs(30);
/// How long the stats report's statements may run (they scan the index).
pub const REPORT_TIMEOUT: Duration = Duration::from_secs(120);
/// How long one request may take before it is answered 503 (the stats report goes on
/// being computed in the background, for the next request).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Most requests served at once; more are answered 503 at once.
pub const MAX_REQUESTS: usize = 64;

/// The figures that scan the whole index, computed together and cached together.
#[derive(Debug)]
pub struct Figures {
    /// What `/stats` charts.
    pub report: Report,
    /// What `estudely stats` prints (`/api/v1/stats`).
    pub stats: Stats,
}

/// Renders the Prometheus text of `/metrics` (the binary passes its exporter's handle).
pub type RenderMetrics = Arc<dyn Fn() -> String + Send + Sync>;

/// How the server runs: what `serve` and `run --serve` take from their flags.
#[derive(Clone)]
pub struct WebConfig {
    /// Ask for HTTP basic authentication with these credentials on every page and API call.
    pub auth: Option<Credentials>,
    /// Most index connections open at once.
    pub db_connections: usize,
    /// Serve `/metrics` with this (404 when `None`).
    pub metrics: Option<RenderMetrics>,
    /// API keys: when there are any, `/torznab/`, `/feed` and `/api/` want one (see
    /// [`keys`]).
    pub api_keys: Vec<keys::ApiKey>,
}

impl Default for WebConfig {
    /// No authentication, 4 connections, no `/metrics`.
    fn default() -> Self {
        WebConfig {
            auth: None,
            db_connections: 4,
            metrics: None,
            api_keys: Vec::new(),
        }
    }
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("auth", &self.auth.as_ref().map(|_| "<redacted>"))
            .field("db_connections", &self.db_connections)
            .field("metrics", &self.metrics.is_some())
            .field("api_keys", &self.api_keys.len())
            .finish()
    }
}

/// What every handler shares.
pub struct AppState {
    /// The index.
    pub pool: Arc<Pool>,
    /// The last figures and when they were made.
    stats: Mutex<Option<(Instant, Arc<Figures>)>>,
    /// Held while the report is computed, so that it is computed once at a time.
    computing: Arc<tokio::sync::Mutex<()>>,
    /// Serve `/metrics` with this.
    metrics: Option<RenderMetrics>,
    /// The API keys and the failed attempts.
    keys: Arc<keys::KeyGuard>,
}

impl AppState {
    /// The state of a server over `url`.
    pub fn new(url: DbUrl, config: &WebConfig) -> AppState {
        AppState {
            pool: Arc::new(Pool::new(
                url,
                config.db_connections,
                STATEMENT_TIMEOUT,
                Duration::from_secs(5),
            )),
            stats: Mutex::new(None),
            computing: Arc::new(tokio::sync::Mutex::new(())),
            metrics: config.metrics.clone(),
            keys: Arc::new(keys::KeyGuard::new(config.api_keys.clone())),
        }
    }

    /// The stats report and counts. Fresh ones (younger than [`STATS_CACHE`]) are served as
    /// they are; older ones are served while new ones are computed in the background; only
    /// the very first requests wait for them. Their queries scan the whole index (seconds
    /// at millions of torrents), so they get [`REPORT_TIMEOUT`] rather than the pages'
    /// limit, and run in a task of their own: a request that times out or goes away does
    /// not cancel them (their result is cached for the next one), nor start them again.
    pub async fn figures(self: &Arc<Self>) -> Result<Arc<Figures>, DbError> {
        match self.cached() {
            Some((age, r)) if age < STATS_CACHE => Ok(r),
            Some((_, stale)) => {
                if let Ok(guard) = Arc::clone(&self.computing).try_lock_owned() {
                    let st = Arc::clone(self);
                    tokio::spawn(async move {
                        let _guard = guard;
                        if let Err(e) = st.compute().await {
                            warn!("stats report: {e}");
                        }
                    });
                }
                Ok(stale)
            }
            None => {
                let guard = Arc::clone(&self.computing).lock_owned().await;
                if let Some((_, r)) = self.cached() {
                    return Ok(r);
                }
                let st = Arc::clone(self);
                let computing = tokio::spawn(async move {
                    let _guard = guard;
                    st.compute().await
                });
                match computing.await {
                    Ok(r) => r,
                    Err(e) => Err(DbError::Failed(anyhow::anyhow!("stats report: {e}"))),
                }
            }
        }
    }

    /// The cached figures and their age.
    fn cached(&self) -> Option<(Duration, Arc<Figures>)> {
        let cache = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        cache.as_ref().map(|(at, r)| (at.elapsed(), Arc::clone(r)))
    }

    /// Compute the figures now and cache them.
    async fn compute(&self) -> Result<Arc<Figures>, DbError> {
        let input = self.pool.url().to_string();
        let now = unix_now();
        let (report, stats) = self
            .pool
            .run(move |s| {
                s.set_statement_timeout(REPORT_TIMEOUT)?;
                let r = Report::with_stats(s, input, now);
                s.set_statement_timeout(STATEMENT_TIMEOUT)?;
                r
            })
            .await?;
        let r = Arc::new(Figures { report, stats });
        *self.stats.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), Arc::clone(&r)));
        Ok(r)
    }
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Every route, with the security headers and (with `auth`) basic authentication.
pub fn router(state: Arc<AppState>, auth: Option<Credentials>) -> Router {
    let mut app = Router::new()
        .route("/", get(pages::home))
        .route("/search", get(pages::search))
        .route("/recent", get(pages::recent))
        .route("/torrent/{key}", get(pages::torrent))
        .route("/stats", get(pages::stats))
        .route("/static/style.css", get(pages::style))
        .route("/api/v1/search", get(api::search))
        .route("/api/v1/torrents/{key}", get(api::torrent))
        .route("/api/v1/stats", get(api::stats))
        .route("/torznab/api", get(torznab::api))
        .route("/feed", get(torznab::rss))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(pages::not_found)
        .with_state(Arc::clone(&state));
    if let Some(creds) = auth {
        app = app.layer(middleware::from_fn_with_state(
            Arc::new(creds),
            auth::require,
        ));
    }
    // Outside basic authentication: a right key lets a machine route past it.
    app = app.layer(middleware::from_fn_with_state(
        Arc::clone(&state.keys),
        keys::require,
    ));
    let app = limit(app, REQUEST_TIMEOUT, MAX_REQUESTS);
    app.layer(middleware::from_fn(security_headers))
        .layer(middleware::from_fn(track))
}

/// At most `max` requests at once, each answered within `timeout`: beyond either, 503
/// (`{"error": ...}` under `/api/`, plain text elsewhere), so that a flood of requests or
/// a slow index cannot pile up work, connections or memory. (Queries stopped this way
/// end by their statement time limit; see [`Pool::run`].)
pub fn limit(app: Router, timeout: Duration, max: usize) -> Router {
    let slots = Arc::new(tokio::sync::Semaphore::new(max.max(1)));
    app.layer(middleware::from_fn(move |req: Request, next: Next| {
        let slots = Arc::clone(&slots);
        async move {
            let api = req.uri().path().starts_with("/api/");
            let Ok(_slot) = slots.try_acquire_owned() else {
                return unavailable(api, "too many requests at once; try again");
            };
            match tokio::time::timeout(timeout, next.run(req)).await {
                Ok(res) => res,
                Err(_) => unavailable(api, "the request took too long; try again"),
            }
        }
    }))
}

/// A 503 saying `why`, with `Retry-After: 1`.
fn unavailable(api: bool, why: &str) -> Response {
    let mut res = if api {
        axum::Json(serde_json::json!({ "error": why })).into_response()
    } else {
        format!("{why}\n").into_response()
    };
    *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    res
}

/// Count every request by route pattern (never the raw path: bounded labels) and status,
/// and time it.
async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("other", |p| route_label(p.as_str()));
    let started = Instant::now();
    let res = next.run(req).await;
    metrics::counter!(
        "estudely_http_requests_total",
        "route" => route,
        "status" => res.status().as_u16().to_string()
    )
    .increment(1);
    metrics::histogram!("estudely_http_request_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    res
}

/// The label of a route pattern: one of the router's own, else `other`.
fn route_label(pattern: &str) -> &'static str {
    const ROUTES: [&str; 14] = [
        "/",
        "/search",
        "/recent",
        "/torrent/{key}",
        "/stats",
        "/static/style.css",
        "/api/v1/search",
        "/api/v1/torrents/{key}",
        "/api/v1/stats",
        "/torznab/api",
        "/feed",
        "/healthz",
        "/readyz",
        "/metrics",
    ];
    ROUTES
        .into_iter()
        .find(|r| *r == pattern)
        .unwrap_or("other")
}

/// `GET /healthz`: the process answers (for supervisors; no authentication).
async fn healthz() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

/// `GET /readyz`: 200 when the index answers a query, else 503 with why (no
/// authentication; the why never holds a password: see `DbUrl`'s `Display`).
async fn readyz(State(st): State<Arc<AppState>>) -> Response {
    match st
        .pool
        .run(|s| s.contains(&estudely_krpc::InfoHash([0; 20])))
        .await
    {
        Ok(_) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => {
            warn!("readyz: {e}");
            (StatusCode::SERVICE_UNAVAILABLE, "index unavailable\n").into_response()
        }
    }
}

/// `GET /metrics`: the Prometheus text, or 404 when metrics are off.
async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    match &st.metrics {
        Some(h) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], h()).into_response(),
        None => (StatusCode::NOT_FOUND, "metrics are off\n").into_response(),
    }
}

/// No scripts, no frames, no sniffing, no referrer: whatever a torrent's name holds, a
/// browser runs nothing from our pages.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
             form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

/// Bind `listen` (a failed bind is a usage error naming it) and warn when it is not
/// loopback and nothing guards it.
pub async fn bind(listen: SocketAddr, auth: bool) -> anyhow::Result<tokio::net::TcpListener> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| UsageError(format!("cannot listen on `{listen}`: {e}")))?;
    if !listen.ip().is_loopback() && !auth {
        warn!("serving {listen} to the network without --auth: anyone who reaches it can read the index");
    }
    Ok(listener)
}

/// Serve `state` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    auth: Option<Credentials>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    info!("web UI at http://{addr}/");
    // Compute the stats report now, so that the first visit to /stats does not wait.
    let warm = Arc::clone(&state);
    tokio::spawn(async move {
        if let Err(e) = warm.figures().await {
            warn!("stats report: {e}");
        }
    });
    let app = router(state, auth).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
