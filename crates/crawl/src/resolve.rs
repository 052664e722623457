//! Turning what the user typed (`IP:PORT`, `[IPv6]:PORT`, `HOST:PORT`) into socket addresses.
//!
//! Names are resolved at run time with the system resolver, bounded by [`RESOLVE_TIMEOUT`].
//! Every failure is a [`UsageError`] naming the input, so the binary exits with code 2.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::task::JoinSet;
use tracing::warn;

/// How long one name may take to resolve.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// The routers a node bootstraps from when no `--bootstrap` is given.
pub const DEFAULT_ROUTERS: [&str; 3] = [
    "router.bittorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "router.utorrent.com:6881",
];

/// Something the user typed is wrong (a bad address, an unknown name, a bad `--db`): exit
/// code 2. (Defined by the index crate, whose `--db` errors are usage errors too.)
pub use estudely_usage::UsageError;

/// Check the syntax of `input` without resolving: a socket address, or `HOST:PORT`.
/// Returns the literal address when there is one.
pub fn parse(input: &str) -> Result<Option<SocketAddr>, UsageError> {
    let bad = |why: &str| UsageError(format!("bad address `{input}`: {why}"));
    if let Ok(addr) = input.parse::<SocketAddr>() {
        if addr.port() == 0 {
            return Err(bad("port 0 cannot be reached"));
        }
        return Ok(Some(addr));
    }
    let Some((host, port)) = input.rsplit_once(':') else {
        return Err(bad("expected IP:PORT, [IPv6]:PORT or HOST:PORT"));
    };
    if host.is_empty() {
        return Err(bad("the host is missing"));
    }
    if host.contains(':') || host.contains('[') {
        return Err(bad("write IPv6 addresses as [ADDR]:PORT"));
    }
    match port.parse::<u16>() {
        Ok(0) => Err(bad("port 0 cannot be reached")),
        Ok(_) => Ok(None),
        Err(_) => Err(bad("the port must be a number from 1 to 65535")),
    }
}

/// Resolve `input` to one or more addresses.
pub async fn resolve(input: &str) -> Result<Vec<SocketAddr>, UsageError> {
    if let Some(addr) = parse(input)? {
        return Ok(vec![addr]);
    }
    let failed = |why: String| UsageError(format!("cannot resolve `{input}`: {why}"));
    let found = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host(input))
        .await
        .map_err(|_| failed("timed out".into()))?
        .map_err(|e| failed(e.to_string()))?;
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for a in found {
        if !addrs.contains(&a) {
            addrs.push(a);
        }
    }
    if addrs.is_empty() {
        return Err(failed("no address found".into()));
    }
    Ok(addrs)
}

/// Resolve `input` to one address, preferring the family of `prefer` when given.
pub async fn resolve_one(
    input: &str,
    prefer: Option<SocketAddr>,
) -> Result<SocketAddr, UsageError> {
    let addrs = resolve(input).await?;
    let wanted = prefer.map(|p| p.is_ipv6());
    addrs
        .iter()
        .find(|a| wanted.is_none_or(|v6| a.is_ipv6() == v6))
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| UsageError(format!("cannot resolve `{input}`: no address found")))
}

/// Resolve bootstrap nodes concurrently, keeping only the families in `v4` / `v6`.
/// A name that fails is skipped with a warning; if nothing usable is left, that is an error.
pub async fn resolve_bootstrap(
    inputs: &[String],
    v4: bool,
    v6: bool,
) -> Result<Vec<SocketAddr>, UsageError> {
    // Syntax errors are the user's to fix, not to skip.
    for input in inputs {
        parse(input)?;
    }
    let mut tasks = JoinSet::new();
    for (i, input) in inputs.iter().enumerate() {
        let input = input.clone();
        tasks.spawn(async move { (i, resolve(&input).await) });
    }
    let mut results = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        if let Ok(r) = joined {
            results.push(r);
        }
    }
    results.sort_by_key(|(i, _)| *i);
    let mut addrs = Vec::new();
    for (_, r) in results {
        match r {
            Ok(found) => {
                for a in found {
                    if (a.is_ipv4() && v4 || a.is_ipv6() && v6) && !addrs.contains(&a) {
                        addrs.push(a);
                    }
                }
            }
            Err(e) => warn!(target: "estudely::resolve", "skipping bootstrap node: {e}"),
        }
    }
    if addrs.is_empty() {
        return Err(UsageError(format!(
            "no usable bootstrap node among {}",
            inputs.join(", ")
        )));
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax() {
        assert_eq!(
            parse("127.0.0.1:6881").unwrap(),
            Some("127.0.0.1:6881".parse().unwrap())
        );
        assert_eq!(
            parse("[::1]:6881").unwrap(),
            Some("[::1]:6881".parse().unwrap())
        );
        assert_eq!(parse("router.example:6881").unwrap(), None);
        for bad in [
            "nonsense",
            ":6881",
            "host:",
            "host:70000",
            "::1:6881",
            "1.2.3.4:0",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.0.contains(bad), "{e}");
        }
    }

    #[tokio::test]
    async fn literal_and_family_preference() {
        let a = resolve_one("127.0.0.1:9", Some("[::]:0".parse().unwrap()))
            .await
            .unwrap();
        assert_eq!(a, "127.0.0.1:9".parse().unwrap());
        let only_v4 = resolve_bootstrap(&["[::1]:9".into(), "127.0.0.1:9".into()], true, false)
            .await
            .unwrap();
        assert_eq!(only_v4, vec!["127.0.0.1:9".parse().unwrap()]);
        assert!(resolve_bootstrap(&["[::1]:9".into()], true, false)
            .await
            .is_err());
    }
}
