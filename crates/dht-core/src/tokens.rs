//! Write tokens: `announce_peer` must present a token we gave the same IP recently.
//!
//! A token is the first 8 bytes of SHA-1(secret ‖ ip). The secret rotates every
//! `token_rotation`; tokens made with the current or the previous secret are accepted, so a
//! token lives between one and two rotation periods, and no per-requester state is kept.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use rand::RngCore;
use sha1::{Digest, Sha1};

use estudely_krpc::Token;

/// Token issuer and checker.
#[derive(Debug, Clone)]
pub struct Tokens {
    current: [u8; 16],
    previous: [u8; 16],
    rotated_at: Instant,
    period: Duration,
}

impl Tokens {
    /// New secrets drawn from `rng`.
    pub fn new(rng: &mut impl RngCore, now: Instant, period: Duration) -> Self {
        let mut current = [0u8; 16];
        let mut previous = [0u8; 16];
        rng.fill_bytes(&mut current);
        rng.fill_bytes(&mut previous);
        Tokens {
            current,
            previous,
            rotated_at: now,
            period,
        }
    }

    /// Rotate the secret if a period has passed.
    pub fn maybe_rotate(&mut self, rng: &mut impl RngCore, now: Instant) {
        if now.saturating_duration_since(self.rotated_at) >= self.period {
            self.previous = self.current;
            rng.fill_bytes(&mut self.current);
            self.rotated_at = now;
        }
    }

    /// When the next rotation is due.
    pub fn next_rotation(&self) -> Instant {
        self.rotated_at + self.period
    }

    /// The token for `ip` under the current secret.
    pub fn issue(&self, ip: IpAddr) -> Token {
        make(&self.current, ip)
    }

    /// Whether `token` was issued to `ip` under the current or previous secret.
    pub fn check(&self, ip: IpAddr, token: &Token) -> bool {
        make(&self.current, ip) == *token || make(&self.previous, ip) == *token
    }
}

fn make(secret: &[u8; 16], ip: IpAddr) -> Token {
    let mut h = Sha1::new();
    h.update(secret);
    match ip {
        IpAddr::V4(v4) => h.update(v4.octets()),
        IpAddr::V6(v6) => h.update(v6.octets()),
    }
    let digest = h.finalize();
    // 8 bytes is always within Token::MAX, so this cannot fail.
    Token::new(&digest[..8]).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::SmallRng, SeedableRng};

    #[test]
    fn valid_for_two_periods_then_expires() {
        let mut rng = SmallRng::seed_from_u64(1);
        let t0 = Instant::now();
        let p = Duration::from_secs(300);
        let mut tokens = Tokens::new(&mut rng, t0, p);
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        let tok = tokens.issue(ip);
        assert!(tokens.check(ip, &tok));
        assert!(!tokens.check("10.1.2.4".parse().unwrap(), &tok));
        tokens.maybe_rotate(&mut rng, t0 + p);
        assert!(tokens.check(ip, &tok), "previous secret still accepted");
        tokens.maybe_rotate(&mut rng, t0 + p * 2);
        assert!(!tokens.check(ip, &tok), "two rotations later it is refused");
    }
}
