//! API keys (`--api-key`): what machines use where people use `--auth`.
//!
//! With keys configured, the machine routes (`/torznab/`, `/feed`, `/api/`) want one: as
//! `apikey=KEY` in the query (what Torznab and RSS clients send) or an `X-Api-Key` header
//! (the JSON API). A request with a right key skips basic authentication; the pages keep
//! `--auth`. A wrong or missing key is 401, and an address that failed
//! [`MAX_FAILURES`] times within [`FAILURE_WINDOW`] gets 429 until the window has passed,
//! whatever key it then sends. Keys are compared in constant time and never logged (the
//! request metrics label routes, not URLs).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use percent_encoding::percent_decode_str;
use serde_json::json;

/// Failed attempts an address may make within [`FAILURE_WINDOW`].
pub const MAX_FAILURES: u32 = 10;
/// The window failures are counted over.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Addresses whose failures are remembered at once (the oldest are forgotten first).
const MAX_TRACKED: usize = 10_000;
/// Shortest key accepted.
pub const MIN_KEY_LEN: usize = 16;

/// One API key. Its `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(Vec<u8>);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

impl ApiKey {
    /// A key of at least [`MIN_KEY_LEN`] printable ASCII characters (no spaces).
    pub fn parse(s: &str) -> Result<ApiKey, String> {
        let s = s.trim();
        if s.len() < MIN_KEY_LEN {
            return Err(format!(
                "an API key needs at least {MIN_KEY_LEN} characters"
            ));
        }
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("an API key is printable ASCII without spaces".to_owned());
        }
        Ok(ApiKey(s.as_bytes().to_vec()))
    }

    /// Is `given` this key? In constant time for keys of one length.
    pub fn matches(&self, given: &[u8]) -> bool {
        crate::auth::same_bytes(&self.0, given)
    }
}

/// Marks a request whose API key was right: basic authentication lets it through.
#[derive(Debug, Clone, Copy)]
pub struct KeyAccepted;

/// The keys and the failures per address.
#[derive(Debug)]
pub struct KeyGuard {
    keys: Vec<ApiKey>,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl KeyGuard {
    /// A guard over `keys` (none: every request passes untouched).
    pub fn new(keys: Vec<ApiKey>) -> KeyGuard {
        KeyGuard {
            keys,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn accepts(&self, given: &[u8]) -> bool {
        // Every key is compared, so the time does not say which one matched.
        self.keys.iter().fold(false, |ok, k| k.matches(given) | ok)
    }

    /// Whether `ip` is over its failures now.
    fn blocked(&self, ip: IpAddr, now: Instant) -> bool {
        let f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        f.get(&ip).is_some_and(|(n, since)| {
            *n >= MAX_FAILURES && now.duration_since(*since) < FAILURE_WINDOW
        })
    }

    fn failed(&self, ip: IpAddr, now: Instant) {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if f.len() >= MAX_TRACKED && !f.contains_key(&ip) {
            f.retain(|_, (_, since)| now.duration_since(*since) < FAILURE_WINDOW);
            if f.len() >= MAX_TRACKED {
                f.clear();
            }
        }
        let e = f.entry(ip).or_insert((0, now));
        if now.duration_since(e.1) >= FAILURE_WINDOW {
            *e = (0, now);
        }
        e.0 = e.0.saturating_add(1);
    }
}

/// The routes that take a key.
fn guarded(path: &str) -> bool {
    path.starts_with("/torznab/") || path == "/feed" || path.starts_with("/api/")
}

/// The `apikey` of a query string, percent-decoded.
fn query_key(query: Option<&str>) -> Option<Vec<u8>> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "apikey")
        .map(|(_, v)| percent_decode_str(&v.replace('+', " ")).collect())
}

/// Check the key of a machine route (when keys are configured); let everything else by.
pub async fn require(State(guard): State<Arc<KeyGuard>>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if guard.keys.is_empty() || !guarded(&path) {
        return next.run(req).await;
    }
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let now = Instant::now();
    if guard.blocked(ip, now) {
        let mut res = refuse(
            &path,
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed attempts",
        );
        res.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(FAILURE_WINDOW.as_secs()),
        );
        return res;
    }
    let given = req
        .headers()
        .get("x-api-key")
        .map(|v| v.as_bytes().to_vec())
        .or_else(|| query_key(req.uri().query()));
    match given {
        Some(k) if guard.accepts(&k) => {
            req.extensions_mut().insert(KeyAccepted);
            next.run(req).await
        }
        _ => {
            guard.failed(ip, now);
            refuse(
                &path,
                StatusCode::UNAUTHORIZED,
                "a valid API key is required",
            )
        }
    }
}

/// A refusal in the route's own language: Newznab error 100 for Torznab and RSS, JSON for
/// the API.
fn refuse(path: &str, status: StatusCode, why: &str) -> Response {
    if path.starts_with("/api/") {
        return (status, Json(json!({ "error": why }))).into_response();
    }
    let mut res = crate::torznab::error(100, &format!("Incorrect user credentials: {why}"));
    *res.status_mut() = status;
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_match_and_hide() {
        let k = ApiKey::parse("0123456789abcdef").unwrap();
        assert!(k.matches(b"0123456789abcdef"));
        assert!(!k.matches(b"0123456789abcdeF"));
        assert!(!k.matches(b"0123456789abcdef0"));
        assert!(!k.matches(b""));
        assert_eq!(format!("{k:?}"), "ApiKey(***)");
        assert!(ApiKey::parse("short").is_err());
        assert!(ApiKey::parse("0123456789 abcdef").is_err());
    }

    #[test]
    fn query_keys_are_decoded() {
        assert_eq!(
            query_key(Some("t=caps&apikey=a%2Bb")),
            Some(b"a+b".to_vec())
        );
        assert_eq!(query_key(Some("apikey=")), Some(Vec::new()));
        assert_eq!(query_key(Some("t=caps")), None);
        assert_eq!(query_key(None), None);
    }

    #[test]
    fn failures_block_for_the_window_then_pass() {
        let g = KeyGuard::new(vec![ApiKey::parse("0123456789abcdef").unwrap()]);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES - 1 {
            g.failed(ip, t0);
        }
        assert!(!g.blocked(ip, t0));
        g.failed(ip, t0);
        assert!(g.blocked(ip, t0));
        assert!(!g.blocked("192.0.2.2".parse().unwrap(), t0), "per address");
        assert!(!g.blocked(ip, t0 + FAILURE_WINDOW), "the window passes");
    }
}
