//! `--auth USER:PASS`: HTTP basic authentication on every route (but the machine routes
//! whose API key was right: see `keys`).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

/// The expected credentials, kept as the `Authorization` header value they give.
#[derive(Clone)]
pub struct Credentials {
    expected: Vec<u8>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(***)")
    }
}

impl Credentials {
    /// Parse `USER:PASS` (the user may not be empty nor hold `:`; the password may).
    pub fn parse(s: &str) -> Result<Credentials, String> {
        match s.split_once(':') {
            Some((user, pass)) if !user.is_empty() && !pass.is_empty() => {
                let token =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
                Ok(Credentials {
                    expected: format!("Basic {token}").into_bytes(),
                })
            }
            _ => Err("expected USER:PASS, both non-empty".to_owned()),
        }
    }

    /// Does this `Authorization` header value match? Compared in constant time.
    pub fn accepts(&self, given: &[u8]) -> bool {
        same_bytes(&self.expected, given)
    }
}

/// Whether `given` is `expected`, in a time that depends on `expected`'s length only (no
/// early exit on the first difference). Written out rather than taken from a crate: five
/// lines. Also the API keys' comparison.
pub(crate) fn same_bytes(expected: &[u8], given: &[u8]) -> bool {
    let mut diff = expected.len() ^ given.len();
    for (i, &b) in expected.iter().enumerate() {
        diff |= usize::from(b ^ given.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

/// Let the request through with the right credentials, else 401 with a challenge.
pub async fn require(State(creds): State<Arc<Credentials>>, req: Request, next: Next) -> Response {
    // A machine route whose API key was right (checked before: see `keys`).
    let by_key = req.extensions().get::<crate::keys::KeyAccepted>().is_some();
    // Supervisors' probes say nothing of the index.
    let probe = matches!(req.uri().path(), "/healthz" | "/readyz");
    let ok = by_key
        || probe
        || req
            .headers()
            .get(header::AUTHORIZATION)
            .is_some_and(|v| creds.accepts(v.as_bytes()));
    if ok {
        return next.run(req).await;
    }
    let mut res = (StatusCode::UNAUTHORIZED, "authentication required\n").into_response();
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"estudely\", charset=\"UTF-8\""),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials() {
        let c = Credentials::parse("me:se:cret").unwrap();
        assert!(c.accepts(b"Basic bWU6c2U6Y3JldA=="));
        assert!(!c.accepts(b"Basic bWU6c2U6Y3JldA="));
        assert!(!c.accepts(b"Basic bWU6c2U6Y3JldA==="));
        assert!(!c.accepts(b""));
        assert!(Credentials::parse(":x").is_err());
        assert!(Credentials::parse("x:").is_err());
        assert!(Credentials::parse("x").is_err());
        assert_eq!(format!("{c:?}"), "Credentials(***)");
    }
}
