//! Politeness: a global query-rate limit (token bucket) and a per-IP budget (sliding window,
//! optionally paced).
//!
//! libtorrent blocks an IP that sends it more than `dht_block_ratelimit` (5/s, i.e. 50 in
//! 10 s) messages; our default per-IP budget is 20 queries in 10 s, well under half of that.
//! The per-IP table is bounded: the least recently used IPs are forgotten first, and an IP
//! is only forgotten once its window has passed, so forgetting never grants extra budget
//! while the table holds fewer than `max_ips` busy IPs.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use smallvec::SmallVec;

/// Send times of one IP, earliest first.
type Times = SmallVec<[Instant; 4]>;

/// A token bucket: `rate` tokens per second, at most `burst` saved up.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    /// A full bucket. A `rate` of 0 or less means unlimited.
    pub fn new(rate: f64, burst: f64, now: Instant) -> Self {
        RateLimiter {
            rate,
            burst: burst.max(1.0),
            tokens: burst.max(1.0),
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        self.last = now;
    }

    /// Take one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        self.refill(now);
        // A hair of tolerance: float rounding must not leave us a nanosecond short forever.
        if self.tokens >= 1.0 - 1e-6 {
            self.tokens = (self.tokens - 1.0).max(0.0);
            true
        } else {
            false
        }
    }

    /// When a token will next be available, judged at the last refill (no clock needed).
    pub fn ready_at(&self) -> Instant {
        if self.rate <= 0.0 || self.tokens >= 1.0 - 1e-6 {
            self.last
        } else {
            self.last + wait_for(1.0 - self.tokens, self.rate)
        }
    }

    /// When the next token will be available (now, if one is).
    pub fn next_token(&self, now: Instant) -> Instant {
        if self.rate <= 0.0 {
            return now;
        }
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        let tokens = (self.tokens + dt * self.rate).min(self.burst);
        if tokens >= 1.0 - 1e-6 {
            now
        } else {
            now + wait_for(1.0 - tokens, self.rate)
        }
    }
}

/// Time to accumulate `missing` tokens at `rate`, rounded up to a whole microsecond.
fn wait_for(missing: f64, rate: f64) -> Duration {
    Duration::from_micros((missing / rate * 1e6).ceil().max(1.0) as u64)
}

/// At most `max` sends per IP within any `window`; if paced ([`IpBudget::paced`]), also at
/// most `burst` within any `burst / max` share of the window.
#[derive(Debug, Clone)]
pub struct IpBudget {
    max: usize,
    window: Duration,
    /// Pacing: at most `.0` sends within any `.1` (a `.0 / max` share of `window`).
    pace: Option<(usize, Duration)>,
    max_ips: usize,
    /// Each IP's send times, in order; the first few inline, since nearly every IP a
    /// crawler meets gets only a few per window: tracking one then allocates nothing.
    sent: HashMap<IpAddr, Times>,
    order: VecDeque<IpAddr>,
}

impl IpBudget {
    /// A budget of `max` per `window`, tracking at most `max_ips` addresses.
    pub fn new(max: usize, window: Duration, max_ips: usize) -> Self {
        IpBudget {
            max,
            window,
            pace: None,
            max_ips: max_ips.max(1),
            sent: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// The same budget spent at an even pace: at most `burst` sends within any `burst / max`
    /// share of the window (5 of 20 per 10 s: 5 in any 2.5 s), so that an IP's budget is not
    /// spent in one instant and then idle for the rest of the window. A `burst` of 0, or of
    /// `max` or more, leaves the budget unpaced.
    ///
    /// Pacing is both kinder to the node asked (no burst of a whole window's queries at
    /// once) and better for a busy crawler: budgets spent all at once free up all at once,
    /// and a crawl limited by them then runs in waves.
    pub fn paced(mut self, burst: usize) -> Self {
        self.pace = (burst > 0 && burst < self.max).then(|| {
            // `burst < max`, so the span is shorter than the window; nanoseconds in a u128
            // cannot overflow for any window a Duration holds.
            let nanos = self.window.as_nanos() * burst as u128 / self.max as u128;
            (
                burst,
                Duration::from_nanos(nanos.min(u64::MAX as u128) as u64),
            )
        });
        self
    }

    /// Whether a send to `ip` at `now` is within budget (does not record it).
    pub fn allows(&self, ip: IpAddr, now: Instant) -> bool {
        self.room(ip, now) > 0
    }

    /// How many more sends to `ip` the budget allows at `now` (the window's and, if paced,
    /// the pace's, whichever is fewer).
    pub fn room(&self, ip: IpAddr, now: Instant) -> usize {
        let Some(times) = self.sent.get(&ip) else {
            return self.pace.map_or(self.max, |(burst, _)| burst);
        };
        let times = times.as_slice();
        let room = self
            .max
            .saturating_sub(times.len() - self.expired(times, now));
        match self.pace {
            Some((burst, span)) => {
                let recent = times.len() - outside(times, now, span);
                room.min(burst.saturating_sub(recent))
            }
            None => room,
        }
    }

    /// Sends to `ip` inside the window ending at `now`.
    ///
    /// The times of an IP are kept in order ([`IpBudget::try_record`]), so the ones inside
    /// the window are a suffix, found by binary search.
    pub fn used(&self, ip: IpAddr, now: Instant) -> usize {
        self.sent
            .get(&ip)
            .map_or(0, |times| times.len() - self.expired(times.as_slice(), now))
    }

    /// How many of `times` (in order) are outside the window ending at `now`: a prefix.
    fn expired(&self, times: &[Instant], now: Instant) -> usize {
        outside(times, now, self.window)
    }

    /// When a send to `ip` will next be within budget.
    pub fn next_allowed(&self, ip: IpAddr, now: Instant) -> Instant {
        match self.sent.get(&ip) {
            Some(times) if !self.allows(ip, now) => {
                // The `n`-th latest send leaving a span of `span` frees one send of a
                // budget of `n` per `span`; both rules must allow it, so the later wins.
                let frees = |n: usize, span: Duration| {
                    times
                        .as_slice()
                        .iter()
                        .rev()
                        .nth(n - 1)
                        .map_or(now, |t| (*t + span).max(now))
                };
                let window = frees(self.max, self.window);
                self.pace
                    .map_or(window, |(burst, span)| window.max(frees(burst, span)))
            }
            _ => now,
        }
    }

    /// Record a send to `ip` if within budget; false (and nothing recorded) otherwise.
    pub fn try_record(&mut self, ip: IpAddr, now: Instant) -> bool {
        if !self.allows(ip, now) {
            return false;
        }
        if !self.sent.contains_key(&ip) {
            self.make_room(now);
            self.order.push_back(ip);
        }
        let cutoff = now.checked_sub(self.window);
        let times = self.sent.entry(ip).or_default();
        if let Some(c) = cutoff {
            let old = times.as_slice().partition_point(|t| *t <= c);
            times.drain(..old);
        }
        // In order, so that `used` can binary-search: a `now` earlier than the last send
        // (a caller's clock is not ours to trust) goes where it belongs.
        let at = times.partition_point(|t| *t <= now);
        times.insert(at, now);
        true
    }

    /// Forget IPs whose window has passed, oldest first, until there is room for one more.
    fn make_room(&mut self, now: Instant) {
        let mut checked = 0;
        while self.sent.len() >= self.max_ips && checked < self.order.len() {
            let Some(ip) = self.order.pop_front() else {
                break;
            };
            let idle = self.sent.get(&ip).is_none_or(|times| {
                times
                    .as_slice()
                    .last()
                    .is_none_or(|t| now.saturating_duration_since(*t) >= self.window)
            });
            if idle {
                self.sent.remove(&ip);
            } else {
                self.order.push_back(ip);
                checked += 1;
            }
        }
    }

    /// Forget every IP whose window has passed (call now and then): the table then holds
    /// only the IPs sent to within the last window.
    pub fn expire(&mut self, now: Instant) {
        let window = self.window;
        self.sent.retain(|_, times| {
            times
                .as_slice()
                .last()
                .is_some_and(|t| now.saturating_duration_since(*t) < window)
        });
        let sent = &self.sent;
        self.order.retain(|ip| sent.contains_key(ip));
        if self.sent.capacity() > 4 * self.sent.len().max(64) {
            self.sent.shrink_to_fit();
            self.order.shrink_to_fit();
        }
    }

    /// IPs tracked now.
    pub fn tracked(&self) -> usize {
        self.sent.len()
    }
}

/// How many of `times` (in order) are outside the span of length `span` ending at `now`: a
/// prefix, found by binary search.
fn outside(times: &[Instant], now: Instant, span: Duration) -> usize {
    match now.checked_sub(span) {
        // `now - t >= span` exactly when `t <= now - span`.
        Some(cutoff) => times.partition_point(|t| *t <= cutoff),
        // Earlier than any span could reach back: none has left it.
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket_paces() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(10.0, 2.0, t0);
        assert!(r.try_take(t0));
        assert!(r.try_take(t0));
        assert!(!r.try_take(t0));
        assert_eq!(r.next_token(t0), t0 + Duration::from_millis(100));
        assert!(r.try_take(t0 + Duration::from_millis(100)));
        let mut unlimited = RateLimiter::new(0.0, 1.0, t0);
        assert!((0..1000).all(|_| unlimited.try_take(t0)));
    }

    #[test]
    fn per_ip_sliding_window() {
        let t0 = Instant::now();
        let ip: IpAddr = "127.0.1.1".parse().unwrap();
        let other: IpAddr = "127.0.1.2".parse().unwrap();
        let w = Duration::from_secs(10);
        let mut b = IpBudget::new(3, w, 100);
        for i in 0..3 {
            assert!(b.try_record(ip, t0 + Duration::from_secs(i)));
        }
        assert!(!b.try_record(ip, t0 + Duration::from_secs(5)));
        assert!(b.try_record(other, t0 + Duration::from_secs(5)));
        assert_eq!(b.next_allowed(ip, t0 + Duration::from_secs(5)), t0 + w);
        assert!(b.try_record(ip, t0 + w));
        assert!(!b.try_record(ip, t0 + w));
    }

    #[test]
    fn paced_budget_spreads_the_window() {
        let t0 = Instant::now();
        let ip: IpAddr = "127.0.1.1".parse().unwrap();
        let ms = Duration::from_millis;
        // 20 per 10 s, paced at 5: at most 5 in any 2.5 s.
        let mut b = IpBudget::new(20, Duration::from_secs(10), 100).paced(5);
        assert_eq!(b.room(ip, t0), 5);
        for _ in 0..5 {
            assert!(b.try_record(ip, t0));
        }
        assert!(!b.try_record(ip, t0));
        assert_eq!(b.room(ip, t0), 0);
        assert_eq!(b.next_allowed(ip, t0), t0 + ms(2500));
        assert!(!b.try_record(ip, t0 + ms(2499)));
        // Sends at an even pace fill the window exactly, never more.
        let mut sent = 5;
        let mut t = t0;
        while t < t0 + Duration::from_secs(30) {
            t += ms(100);
            if b.try_record(ip, t) {
                sent += 1;
            }
            assert!(b.used(ip, t) <= 20, "window budget kept at {t:?}");
        }
        // 30 s at 2 per second, plus the first burst, at most.
        assert!((60..=65).contains(&sent), "{sent}");
        // Both rules spent: the later time wins (here they agree).
        let mut w = IpBudget::new(4, Duration::from_secs(10), 100).paced(2);
        for s in [0, 0, 5, 5] {
            assert!(w.try_record(ip, t0 + ms(s * 1000)), "{s}");
        }
        assert!(!w.allows(ip, t0 + ms(9_000)));
        assert_eq!(w.next_allowed(ip, t0 + ms(9_000)), t0 + ms(10_000));
        // Pacing at the whole budget, or at 0, is no pacing.
        for burst in [0, 4, 9] {
            let mut u = IpBudget::new(4, Duration::from_secs(10), 100).paced(burst);
            assert!((0..4).all(|_| u.try_record(ip, t0)), "{burst}");
            assert!(!u.try_record(ip, t0));
        }
    }

    #[test]
    fn bounded_without_granting_budget_to_busy_ips() {
        let t0 = Instant::now();
        let w = Duration::from_secs(10);
        let mut b = IpBudget::new(1, w, 2);
        let ip = |i: u8| IpAddr::from([10, 0, 0, i]);
        assert!(b.try_record(ip(1), t0));
        assert!(b.try_record(ip(2), t0));
        // Table full of busy IPs: a third is still tracked (table may exceed the bound only
        // while every tracked IP is inside its window), and ip(1) stays refused.
        assert!(b.try_record(ip(3), t0));
        assert!(!b.try_record(ip(1), t0));
        // Once windows pass, old IPs are forgotten to make room.
        for i in 4..50 {
            assert!(b.try_record(ip(i), t0 + w * u32::from(i)));
        }
        assert!(b.tracked() <= 3);
        b.expire(t0 + w * 100);
        assert_eq!(b.tracked(), 0, "idle IPs are forgotten");
        assert!(b.try_record(ip(1), t0 + w * 100));
        assert!(!b.try_record(ip(1), t0 + w * 100), "a busy IP is not");
        b.expire(t0 + w * 100);
        assert_eq!(b.tracked(), 1);
    }
}
