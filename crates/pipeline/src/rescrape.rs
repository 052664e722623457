//! Re-scrapes of stored torrents (`run --rescrape-rate`): which key goes to the crawler
//! next, and when, so that the BEP 33 estimates of the index are kept fresh at a polite,
//! fixed cost.
//!
//! The store hands out the stalest keys ([`Store::stale_estimates`]: never scraped first,
//! then the longest ago; none scraped within `--rescrape-after`) in batches of [`BATCH`].
//! One is handed to the crawler ([`Crawler::scrape`], which sends its queries through the
//! same rate limit and per-IP budgets as the crawl) every `60 s / rate` at most; never one
//! whose torrent is being discovered or fetched now, nor one already out; at most
//! [`MAX_OUT`] out at once. A re-scrape whose end never comes (its search replaced by a
//! discovery search of the same infohash) is forgotten after [`OUT_FOR`]. A key whose
//! re-scrape ended is not taken again for [`OUT_FOR`] (or `--rescrape-after`, if shorter):
//! its result may still be on its way to the store, which then still calls it stale. When
//! the store has nothing stale, or only keys already out or just done, it is asked again
//! after [`IDLE`].
//!
//! Sans-IO: the caller passes the time, asks the store, and talks to the crawler.
//!
//! [`Store::stale_estimates`]: estudely_store::Store::stale_estimates
//! [`Crawler::scrape`]: estudely_dht_core::crawl::Crawler::scrape

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use estudely_krpc::InfoHash;

/// Keys asked of the store at a time.
pub const BATCH: usize = 64;
/// Re-scrapes out at once at most (the crawler's own cap,
/// [`CrawlConfig::max_scrapes`](estudely_dht_core::crawl::CrawlConfig::max_scrapes), is 16).
pub const MAX_OUT: usize = 16;
/// How long a re-scrape may stay out before it is forgotten.
pub const OUT_FOR: Duration = Duration::from_secs(600);
/// How long to wait before asking the store again when it had nothing new to re-scrape.
pub const IDLE: Duration = Duration::from_secs(60);

/// `run --rescrape-rate` and `--rescrape-after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RescrapeConfig {
    /// Re-scrapes started per minute at most; 0: none.
    pub per_minute: u32,
    /// A torrent is re-scraped at most once in this long.
    pub after: Duration,
}

/// Re-scrapes of a run, by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RescrapeCounts {
    /// Handed to the crawler.
    pub sent: u64,
    /// Ended with estimates (some node sent a filter).
    pub answered: u64,
    /// Ended without (no node sent a filter): only the time of the try is stored.
    pub empty: u64,
    /// Refused by the crawler (its queue full, no node in its routing table yet).
    pub refused: u64,
    /// `get_peers` the ended ones sent.
    pub queries: u64,
}

/// The re-scrape schedule: see the module doc.
#[derive(Debug)]
pub struct Rescrapes {
    cfg: RescrapeConfig,
    interval: Duration,
    next_at: Instant,
    waiting: VecDeque<InfoHash>,
    asking: bool,
    ask_after: Instant,
    out: HashMap<InfoHash, Instant>,
    /// Keys whose re-scrape ended, and when: not taken again while their result may not be
    /// stored yet.
    done: HashMap<InfoHash, Instant>,
    /// The outcomes so far.
    pub counts: RescrapeCounts,
}

impl Rescrapes {
    /// The schedule from `now`; `None` when re-scrapes are off (`per_minute` 0).
    pub fn new(cfg: RescrapeConfig, now: Instant) -> Option<Rescrapes> {
        (cfg.per_minute > 0).then(|| Rescrapes {
            cfg,
            interval: Duration::from_secs(60) / cfg.per_minute,
            next_at: now,
            waiting: VecDeque::with_capacity(BATCH),
            asking: false,
            ask_after: now,
            out: HashMap::new(),
            done: HashMap::new(),
            counts: RescrapeCounts::default(),
        })
    }

    /// The settings.
    pub fn config(&self) -> RescrapeConfig {
        self.cfg
    }

    /// Whether the store is to be asked for stale keys now (then [`Rescrapes::keys`] must
    /// follow with its answer; it is not asked again meanwhile).
    pub fn wants_keys(&mut self, now: Instant) -> bool {
        let wants = !self.asking && self.waiting.is_empty() && now >= self.ask_after;
        self.asking |= wants;
        wants
    }

    /// The store's answer: the stalest keys.
    pub fn keys(&mut self, now: Instant, keys: Vec<InfoHash>) {
        self.asking = false;
        self.expire(now);
        let before = self.waiting.len();
        let (out, done) = (&self.out, &self.done);
        self.waiting.extend(
            keys.into_iter()
                .filter(|k| !out.contains_key(k) && !done.contains_key(k)),
        );
        if self.waiting.len() == before {
            self.ask_after = now + IDLE;
        }
    }

    /// The next key to re-scrape, if the budget allows one at `now`: the stalest waiting
    /// that is not `busy` (discovered or fetched now: skipped, it comes back in a later
    /// batch) nor out. The caller reports what the crawler made of it
    /// ([`Rescrapes::sent`]).
    pub fn next(&mut self, now: Instant, busy: impl Fn(&InfoHash) -> bool) -> Option<InfoHash> {
        self.expire(now);
        if now < self.next_at || self.out.len() >= MAX_OUT {
            return None;
        }
        while let Some(ih) = self.waiting.pop_front() {
            if busy(&ih) || self.out.contains_key(&ih) {
                continue;
            }
            // Spent whether the crawler takes it or not: a refusal never makes it spin.
            self.next_at = now + self.interval;
            return Some(ih);
        }
        None
    }

    /// Forget the re-scrapes out for [`OUT_FOR`], and the ended ones once their results
    /// are surely stored.
    fn expire(&mut self, now: Instant) {
        self.out.retain(|_, at| now < *at + OUT_FOR);
        let keep = OUT_FOR.min(self.cfg.after);
        self.done.retain(|_, at| now < *at + keep);
    }

    /// Whether `ih`'s re-scrape is out (the crawler gives a new discovery of it no search).
    pub fn is_out(&self, ih: &InfoHash) -> bool {
        self.out.contains_key(ih)
    }

    /// What the crawler made of the key [`Rescrapes::next`] gave: taken (`accepted`), or
    /// refused (it comes back in a later batch).
    pub fn sent(&mut self, ih: InfoHash, now: Instant, accepted: bool) {
        if accepted {
            self.out.insert(ih, now);
            self.counts.sent += 1;
        } else {
            self.counts.refused += 1;
        }
    }

    /// A re-scrape ended at `now` after `queries` `get_peers`, with estimates (`answered`) or
    /// without; false (not counted) for one not out (forgotten after [`OUT_FOR`]).
    pub fn ended(&mut self, ih: &InfoHash, answered: bool, queries: usize, now: Instant) -> bool {
        if self.out.remove(ih).is_none() {
            return false;
        }
        // Bounded by the rate: one entry per re-scrape ended, each dropped by `expire`
        // after at most OUT_FOR (6,000 at most at 600 a minute).
        self.done.insert(*ih, now);
        self.counts.queries += queries as u64;
        if answered {
            self.counts.answered += 1;
        } else {
            self.counts.empty += 1;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ih(i: u8) -> InfoHash {
        InfoHash([i; 20])
    }

    fn cfg(per_minute: u32) -> RescrapeConfig {
        RescrapeConfig {
            per_minute,
            after: Duration::from_secs(3_600),
        }
    }

    #[test]
    fn off_at_zero() {
        assert!(Rescrapes::new(cfg(0), Instant::now()).is_none());
    }

    /// At 30 a minute, one every 2 s however often it is asked; busy keys are skipped;
    /// a refusal spends the turn; ends are counted once.
    #[test]
    fn one_per_interval_stalest_first_busy_ones_skipped() {
        let t0 = Instant::now();
        let mut r = Rescrapes::new(cfg(30), t0).unwrap();
        assert!(r.wants_keys(t0));
        assert!(!r.wants_keys(t0), "asked once until the answer");
        assert_eq!(r.next(t0, |_| false), None, "nothing waiting yet");
        r.keys(t0, vec![ih(1), ih(2), ih(3), ih(4)]);
        assert!(!r.wants_keys(t0), "keys waiting");
        let busy = |k: &InfoHash| *k == ih(1);
        assert_eq!(r.next(t0, busy), Some(ih(2)), "the stalest not busy");
        r.sent(ih(2), t0, true);
        for ms in [0, 500, 1_999] {
            assert_eq!(r.next(t0 + Duration::from_millis(ms), busy), None);
        }
        let t2 = t0 + Duration::from_secs(2);
        assert_eq!(r.next(t2, busy), Some(ih(3)));
        r.sent(ih(3), t2, false);
        assert_eq!(r.next(t2, busy), None, "a refusal spends the turn");
        let t4 = t0 + Duration::from_secs(4);
        assert_eq!(r.next(t4, busy), Some(ih(4)));
        r.sent(ih(4), t4, true);
        assert!(r.ended(&ih(2), true, 5, t0));
        assert!(r.ended(&ih(4), false, 3, t0));
        assert!(!r.ended(&ih(4), false, 3, t0), "once");
        assert!(!r.ended(&ih(9), true, 1, t0), "not ours");
        assert_eq!(
            r.counts,
            RescrapeCounts {
                sent: 2,
                answered: 1,
                empty: 1,
                refused: 1,
                queries: 8
            }
        );
        assert!(r.wants_keys(t4), "the batch is used up: ask for the next");
    }

    /// Keys already out are not taken again; a batch of nothing new waits [`IDLE`]; at
    /// most [`MAX_OUT`] out, and one whose end never comes is forgotten after [`OUT_FOR`].
    #[test]
    fn bounded_and_never_twice_at_once() {
        let t0 = Instant::now();
        let mut r = Rescrapes::new(cfg(6_000), t0).unwrap();
        assert!(r.wants_keys(t0));
        r.keys(t0, (0..40).map(ih).collect());
        let mut t = t0;
        let mut out = Vec::new();
        while let Some(k) = r.next(t, |_| false) {
            r.sent(k, t, true);
            out.push(k);
            t += Duration::from_millis(10);
        }
        assert_eq!(out.len(), MAX_OUT);
        assert_eq!(r.waiting.len(), 40 - MAX_OUT);
        // The store still has the ones out as stale (their results not written yet).
        r.waiting.clear();
        r.asking = true;
        r.keys(t, out.clone());
        assert!(r.waiting.is_empty());
        assert!(!r.wants_keys(t), "nothing new: wait");
        assert!(r.wants_keys(t + IDLE));
        r.keys(t + IDLE, vec![ih(200)]);
        assert_eq!(r.next(t + IDLE, |_| false), None, "16 out");
        assert!(r.ended(&out[0], true, 1, t + IDLE));
        assert_eq!(r.next(t + IDLE, |_| false), Some(ih(200)));
        r.sent(ih(200), t + IDLE, true);
        let late = t + OUT_FOR + IDLE;
        assert!(r.wants_keys(late));
        r.keys(late, vec![out[1]]);
        assert_eq!(
            r.next(late, |_| false),
            Some(out[1]),
            "forgotten: taken again"
        );
    }

    /// A key whose re-scrape just ended is not taken again from a batch in which the store
    /// still calls it stale (its result on its way), until its result is surely stored.
    #[test]
    fn an_ended_key_is_not_taken_again_before_its_result_is_stored() {
        let t0 = Instant::now();
        let mut r = Rescrapes::new(cfg(600), t0).unwrap();
        assert!(r.wants_keys(t0));
        r.keys(t0, vec![ih(1), ih(2)]);
        assert_eq!(r.next(t0, |_| false), Some(ih(1)));
        r.sent(ih(1), t0, true);
        let t1 = t0 + Duration::from_secs(1);
        assert!(r.ended(&ih(1), true, 8, t1));
        assert_eq!(r.next(t1, |_| false), Some(ih(2)));
        r.sent(ih(2), t1, true);
        // The store has not written ih(1)'s result yet.
        assert!(r.wants_keys(t1));
        r.keys(t1, vec![ih(1), ih(3)]);
        let t2 = t1 + Duration::from_secs(1);
        assert_eq!(
            r.next(t2, |_| false),
            Some(ih(3)),
            "ih(1) just done: skipped"
        );
        r.sent(ih(3), t2, true);
        assert_eq!(r.next(t2 + Duration::from_secs(1), |_| false), None);
        // Once OUT_FOR has passed (shorter than --rescrape-after here), it may come again.
        let later = t1 + OUT_FOR;
        assert!(r.wants_keys(later));
        r.keys(later, vec![ih(1)]);
        assert_eq!(r.next(later, |_| false), Some(ih(1)));
        // With a --rescrape-after shorter than OUT_FOR, after that long.
        let mut short = Rescrapes::new(
            RescrapeConfig {
                per_minute: 600,
                after: Duration::from_secs(30),
            },
            t0,
        )
        .unwrap();
        assert!(short.wants_keys(t0));
        short.keys(t0, vec![ih(1)]);
        assert_eq!(short.next(t0, |_| false), Some(ih(1)));
        short.sent(ih(1), t0, true);
        assert!(short.ended(&ih(1), true, 8, t0));
        assert!(short.wants_keys(t0));
        short.keys(t0, vec![ih(1)]);
        assert_eq!(short.next(t0 + Duration::from_secs(29), |_| false), None);
        let t30 = t0 + Duration::from_secs(30);
        assert!(short.wants_keys(t30 + IDLE));
        short.keys(t30 + IDLE, vec![ih(1)]);
        assert_eq!(short.next(t30 + IDLE, |_| false), Some(ih(1)));
    }
}
