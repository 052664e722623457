//! Prometheus metrics: the counters the crawl, the fetches and the index already keep,
//! published through the [`metrics`] facade.
//!
//! This module only records: a program that wants the figures installs a recorder (the
//! `estudely` binary's `--metrics ADDR` installs a Prometheus exporter, calls [`describe`]
//! and serves `GET /metrics`). Without one every `publish_*` call is a no-op costing a few
//! atomic loads.
//!
//! The `publish_*` functions take the cumulative snapshots that the crawler, the node and
//! the fetcher keep, and set counters to them (`absolute`) and gauges to sizes; they may be
//! called as often as wished. Names follow Prometheus conventions: `estudely_` prefix,
//! `_total` on counters, the unit in the name (`_seconds`).
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `estudely_queries_sent_total` | counter | `method` |
//! | `estudely_queries_received_total` | counter | `method` |
//! | `estudely_query_outcomes_total` | counter | `outcome`: `reply`, `error`, `timeout` |
//! | `estudely_replies_sent_total` | counter | |
//! | `estudely_datagrams_total` | counter | `direction`: `in`, `out` (every datagram the node took or gave) |
//! | `estudely_queries_refused_total` | counter | `reason`: `budget`, `dead` |
//! | `estudely_rate_limit_waits_total` | counter | |
//! | `estudely_malformed_datagrams_total` | counter | |
//! | `estudely_routing_table_nodes` | gauge | `family`: `ipv4`, `ipv6` |
//! | `estudely_queries_in_flight` | gauge | |
//! | `estudely_samples_received_total` | counter | |
//! | `estudely_infohashes_total` | counter | |
//! | `estudely_harvested_infohashes_total` | counter | |
//! | `estudely_peers_total` | counter | |
//! | `estudely_nodes_other_shard_total` | counter | |
//! | `estudely_nodes_rested_total` | counter | |
//! | `estudely_known_nodes`, `estudely_frontier_nodes`, `estudely_search_queue`, `estudely_searches` | gauge | |
//! | `estudely_metadata_infohashes_total` | counter | |
//! | `estudely_metadata_fetched_total` | counter | |
//! | `estudely_metadata_fetched_by_transport_total` | counter | `transport`: `tcp`, `utp` |
//! | `estudely_metadata_encrypted_total` | counter | |
//! | `estudely_metadata_failed_total` | counter | `reason` (a [`FailureKind`]) |
//! | `estudely_fetch_backlog` | gauge | |
//! | `estudely_db_write_seconds` | histogram | |
//! | `estudely_db_rows_written_total` | counter | |
//! | `estudely_http_requests_total` | counter | `route` (the pattern), `status` |
//! | `estudely_http_request_seconds` | histogram | `route` |

use estudely_dht_core::Stats as NodeStats;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};

use estudely_crawl::Progress;
use estudely_fetch::{FailureKind, FetchStats, Transport};

/// Buckets of the `estudely_db_write_seconds` histogram (and of
/// `estudely_http_request_seconds`), for the recorder a program installs.
pub const DB_WRITE_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Describe every metric to the installed recorder: help texts, shown as `# HELP` lines (the
/// two `estudely_http_*` series are recorded by the `estudely-web` crate). Call it once,
/// after installing the recorder.
pub fn describe() {
    describe_counter!(
        "estudely_http_requests_total",
        "Web UI and API requests, by route pattern and status."
    );
    describe_histogram!(
        "estudely_http_request_seconds",
        metrics::Unit::Seconds,
        "Time to answer a web UI or API request, by route pattern."
    );
    describe_counter!(
        "estudely_queries_sent_total",
        "DHT queries sent, by method."
    );
    describe_counter!(
        "estudely_queries_received_total",
        "DHT queries received, by method."
    );
    describe_counter!(
        "estudely_query_outcomes_total",
        "How our DHT queries ended: reply, error (a KRPC error reply) or timeout."
    );
    describe_counter!(
        "estudely_replies_sent_total",
        "Replies (responses and errors) sent to other nodes' queries."
    );
    describe_counter!(
        "estudely_datagrams_total",
        "UDP datagrams our DHT node received (in) and sent (out), of every kind."
    );
    describe_counter!(
        "estudely_queries_refused_total",
        "Queries not sent: the IP was over its budget or the queue full (budget), or the address is dead (dead)."
    );
    describe_counter!(
        "estudely_rate_limit_waits_total",
        "Queries that waited for the global rate limit before being sent."
    );
    describe_counter!(
        "estudely_malformed_datagrams_total",
        "Datagrams received that were not KRPC."
    );
    describe_gauge!(
        "estudely_routing_table_nodes",
        "Nodes in the routing table, by address family."
    );
    describe_gauge!(
        "estudely_queries_in_flight",
        "DHT queries awaiting a reply."
    );
    describe_counter!(
        "estudely_samples_received_total",
        "sample_infohashes replies received with samples."
    );
    describe_counter!(
        "estudely_infohashes_total",
        "Distinct infohashes found by the crawl."
    );
    describe_counter!(
        "estudely_harvested_infohashes_total",
        "Of them, infohashes found because a node announced them to our node."
    );
    describe_counter!(
        "estudely_peers_total",
        "Distinct (infohash, peer) pairs found by the crawl."
    );
    describe_counter!(
        "estudely_nodes_other_shard_total",
        "Listings of nodes (with repeats) not kept because their id lies outside this crawler's --shard."
    );
    describe_counter!(
        "estudely_nodes_rested_total",
        "Nodes put to rest until their interval passes (the fixed-memory resting filter)."
    );
    describe_gauge!("estudely_known_nodes", "Nodes the crawler remembers.");
    describe_gauge!(
        "estudely_frontier_nodes",
        "Nodes waiting for their first visit."
    );
    describe_gauge!(
        "estudely_search_queue",
        "Infohashes waiting for a peer search."
    );
    describe_gauge!("estudely_searches", "Peer searches running.");
    describe_counter!(
        "estudely_metadata_infohashes_total",
        "Infohashes whose metadata fetch ended, obtained or not."
    );
    describe_counter!(
        "estudely_metadata_fetched_total",
        "Infohashes whose metadata was obtained and verified."
    );
    describe_counter!(
        "estudely_metadata_fetched_by_transport_total",
        "Infohashes whose metadata was obtained, by the transport that carried it (tcp, utp)."
    );
    describe_counter!(
        "estudely_metadata_encrypted_total",
        "Infohashes whose metadata was obtained over an encrypted (MSE) connection."
    );
    describe_counter!(
        "estudely_metadata_failed_total",
        "Failed metadata attempts (one peer each), by reason."
    );
    describe_gauge!(
        "estudely_fetch_backlog",
        "Infohashes waiting for, or in, a metadata fetch."
    );
    describe_histogram!(
        "estudely_db_write_seconds",
        metrics::Unit::Seconds,
        "Time taken by one database write (a batch of rows)."
    );
    describe_counter!(
        "estudely_db_rows_written_total",
        "Rows written to the database."
    );
    describe_counter!(
        "estudely_index_filter_lookups_total",
        "Infohashes the in-memory known-filter let through to a database lookup."
    );
    describe_counter!(
        "estudely_index_filter_known_total",
        "Database lookups that found the infohash stored (the rest were false positives)."
    );
    describe_gauge!(
        "estudely_index_filter_bytes",
        metrics::Unit::Bytes,
        "Memory of the known-filter."
    );
    describe_gauge!(
        "estudely_store_queue",
        "Requests waiting for the store thread (bounded)."
    );
    describe_counter!(
        "estudely_store_queue_waits_total",
        "Times the crawl found the store queue full and waited for the database."
    );
    describe_counter!(
        "estudely_claims_refused_total",
        "Claims refused before a fetch: the torrent was stored, or another crawler on the \
         same index holds its lease (the contention of sharded crawlers)."
    );
    describe_counter!(
        "estudely_leases_swept_total",
        "Expired leases deleted (left by crawlers that stopped while fetching)."
    );
    describe_counter!(
        "estudely_rescrapes_total",
        "Re-scrapes of stored torrents (run --rescrape-rate), by outcome: sent, answered \
         (with estimates), empty (no node sent a filter)."
    );
}

/// Publish a crawl's progress: the crawler's counters and its node's.
pub fn publish_crawl(p: &Progress) {
    let s = &p.stats;
    counter!("estudely_samples_received_total").absolute(s.samples_answered);
    counter!("estudely_infohashes_total").absolute(s.infohashes as u64);
    counter!("estudely_harvested_infohashes_total").absolute(s.harvested);
    counter!("estudely_peers_total").absolute(s.peers);
    counter!("estudely_nodes_other_shard_total").absolute(s.nodes_other_shard);
    counter!("estudely_nodes_rested_total").absolute(s.nodes_rested);
    gauge!("estudely_known_nodes").set(s.nodes_known as f64);
    gauge!("estudely_frontier_nodes").set(s.frontier as f64);
    gauge!("estudely_search_queue").set(s.search_queue as f64);
    gauge!("estudely_searches").set(s.searches as f64);
    publish_node(&p.node);
}

/// Publish a DHT node's counters.
pub fn publish_node(s: &NodeStats) {
    for (method, n) in s.sent_by_method.by_name() {
        counter!("estudely_queries_sent_total", "method" => method).absolute(n);
    }
    for (method, n) in s.received_by_method.by_name() {
        counter!("estudely_queries_received_total", "method" => method).absolute(n);
    }
    let outcomes = [
        ("reply", s.responses_received),
        ("error", s.errors_received),
        ("timeout", s.timeouts),
    ];
    for (outcome, n) in outcomes {
        counter!("estudely_query_outcomes_total", "outcome" => outcome).absolute(n);
    }
    counter!("estudely_replies_sent_total").absolute(s.replies_sent);
    counter!("estudely_datagrams_total", "direction" => "in").absolute(s.datagrams_received);
    counter!("estudely_datagrams_total", "direction" => "out").absolute(s.datagrams_sent);
    counter!("estudely_queries_refused_total", "reason" => "budget").absolute(s.refused_by_budget);
    counter!("estudely_queries_refused_total", "reason" => "dead").absolute(s.dead_refused);
    counter!("estudely_rate_limit_waits_total").absolute(s.rate_limited);
    counter!("estudely_malformed_datagrams_total").absolute(s.malformed);
    gauge!("estudely_routing_table_nodes", "family" => "ipv4").set(s.nodes_v4 as f64);
    gauge!("estudely_routing_table_nodes", "family" => "ipv6").set(s.nodes_v6 as f64);
    gauge!("estudely_queries_in_flight").set(s.in_flight as f64);
}

/// Publish a fetcher's counters. A failure reason appears once an attempt failed so.
pub fn publish_fetch(s: &FetchStats) {
    counter!("estudely_metadata_infohashes_total").absolute(s.infohashes);
    counter!("estudely_metadata_fetched_total").absolute(s.obtained);
    for t in [Transport::Tcp, Transport::Utp] {
        counter!("estudely_metadata_fetched_by_transport_total", "transport" => t.as_str())
            .absolute(s.obtained_over(t));
    }
    counter!("estudely_metadata_encrypted_total").absolute(s.encrypted);
    for (kind, &n) in &s.failures {
        let reason = FailureKind::as_str(*kind);
        counter!("estudely_metadata_failed_total", "reason" => reason).absolute(n);
    }
}

/// Publish how many infohashes wait for, or are in, a metadata fetch.
pub fn publish_fetch_backlog(n: usize) {
    gauge!("estudely_fetch_backlog").set(n as f64);
}

/// The index side of `run`, for [`publish_index`].
#[derive(Debug, Clone, Copy, Default)]
pub struct IndexFigures {
    /// Infohashes the known-filter let through to a database lookup.
    pub filter_lookups: u64,
    /// Of those, the ones the database knew (the rest were false positives).
    pub filter_known: u64,
    /// Bytes of the known-filter.
    pub filter_bytes: u64,
    /// Requests waiting for the store thread.
    pub queue: u64,
    /// Times the crawl found the store queue full and waited.
    pub queue_waits: u64,
    /// Expired leases swept.
    pub leases_swept: u64,
    /// Claims refused (stored already, or another crawler's lease).
    pub claims_refused: u64,
    /// Re-scrapes of stored torrents sent (`run --rescrape-rate`).
    pub rescrapes_sent: u64,
    /// Of them, ended with estimates.
    pub rescrapes_answered: u64,
    /// Of them, ended without (no node sent a filter).
    pub rescrapes_empty: u64,
    /// Whether the index answers (false while `run` reconnects to it).
    pub available: bool,
    /// Requests held on the crawl side while the index is away.
    pub held: u64,
    /// Times the index went away.
    pub outages: u64,
}

/// Publish the index side of `run`.
pub fn publish_index(f: &IndexFigures) {
    counter!("estudely_index_filter_lookups_total").absolute(f.filter_lookups);
    counter!("estudely_index_filter_known_total").absolute(f.filter_known);
    gauge!("estudely_index_filter_bytes").set(f.filter_bytes as f64);
    gauge!("estudely_store_queue").set(f.queue as f64);
    counter!("estudely_store_queue_waits_total").absolute(f.queue_waits);
    counter!("estudely_leases_swept_total").absolute(f.leases_swept);
    counter!("estudely_claims_refused_total").absolute(f.claims_refused);
    counter!("estudely_rescrapes_total", "outcome" => "sent").absolute(f.rescrapes_sent);
    counter!("estudely_rescrapes_total", "outcome" => "answered").absolute(f.rescrapes_answered);
    counter!("estudely_rescrapes_total", "outcome" => "empty").absolute(f.rescrapes_empty);
    gauge!("estudely_index_available").set(if f.available { 1.0 } else { 0.0 });
    gauge!("estudely_store_held").set(f.held as f64);
    counter!("estudely_index_outages_total").absolute(f.outages);
}

/// Record one database write of `rows` rows that took `seconds`.
pub fn record_db_write(seconds: f64, rows: u64) {
    histogram!("estudely_db_write_seconds").record(seconds);
    counter!("estudely_db_rows_written_total").increment(rows);
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use estudely_dht_core::crawl::CrawlStats;
    use estudely_dht_core::MethodCounts;

    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

    use super::*;

    /// The recorder's settings, as the binary's.
    fn builder() -> PrometheusBuilder {
        PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("estudely_db_write_seconds".into()),
                &DB_WRITE_BUCKETS,
            )
            .unwrap()
    }

    /// Run `publish` against a fresh recorder; its rendering.
    fn rendered(publish: impl FnOnce()) -> String {
        let recorder = builder().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            describe();
            publish();
        });
        handle.run_upkeep();
        handle.render()
    }

    fn has(text: &str, line: &str) -> bool {
        text.lines().any(|l| l == line)
    }

    fn node_stats() -> NodeStats {
        NodeStats {
            nodes_v4: 120,
            in_flight: 7,
            queries_sent: 60,
            sent_by_method: MethodCounts {
                find_node: 10,
                get_peers: 20,
                sample_infohashes: 30,
                ..MethodCounts::default()
            },
            received_by_method: MethodCounts {
                ping: 4,
                announce_peer: 2,
                ..MethodCounts::default()
            },
            responses_received: 40,
            errors_received: 3,
            timeouts: 17,
            rate_limited: 9,
            ..NodeStats::default()
        }
    }

    #[test]
    fn crawl_and_node_metrics_are_named_and_labelled() {
        let p = Progress {
            stats: CrawlStats {
                nodes_known: 5000,
                frontier: 42,
                samples_answered: 25,
                infohashes: 120,
                harvested: 3,
                peers: 300,
                search_queue: 11,
                nodes_other_shard: 77,
                nodes_rested: 6,
                ..CrawlStats::default()
            },
            node: node_stats(),
            queries_sent: 60,
            recent_rate: 24.8,
            elapsed: Duration::from_secs(60),
        };
        let text = rendered(|| publish_crawl(&p));
        for line in [
            "# TYPE estudely_queries_sent_total counter",
            "estudely_queries_sent_total{method=\"sample_infohashes\"} 30",
            "estudely_queries_sent_total{method=\"get_peers\"} 20",
            "estudely_queries_sent_total{method=\"find_node\"} 10",
            "estudely_queries_sent_total{method=\"ping\"} 0",
            "estudely_queries_received_total{method=\"ping\"} 4",
            "estudely_queries_received_total{method=\"announce_peer\"} 2",
            "estudely_query_outcomes_total{outcome=\"reply\"} 40",
            "estudely_query_outcomes_total{outcome=\"error\"} 3",
            "estudely_query_outcomes_total{outcome=\"timeout\"} 17",
            "estudely_rate_limit_waits_total 9",
            "estudely_routing_table_nodes{family=\"ipv4\"} 120",
            "estudely_queries_in_flight 7",
            "estudely_samples_received_total 25",
            "estudely_infohashes_total 120",
            "estudely_harvested_infohashes_total 3",
            "estudely_peers_total 300",
            "# TYPE estudely_nodes_other_shard_total counter",
            "estudely_nodes_other_shard_total 77",
            "estudely_nodes_rested_total 6",
            "# TYPE estudely_known_nodes gauge",
            "estudely_known_nodes 5000",
            "estudely_frontier_nodes 42",
            "estudely_search_queue 11",
        ] {
            assert!(has(&text, line), "no `{line}` in:\n{text}");
        }
        assert!(
            text.contains("# HELP estudely_queries_sent_total "),
            "{text}"
        );
        assert!(
            !text.contains("estudely_metadata_failed_total"),
            "no fetch here:\n{text}"
        );
    }

    #[test]
    fn counters_follow_the_cumulative_snapshots() {
        let recorder = builder().build_recorder();
        let handle = recorder.handle();
        let mut s = node_stats();
        metrics::with_local_recorder(&recorder, || publish_node(&s));
        s.sent_by_method.get_peers = 25;
        metrics::with_local_recorder(&recorder, || publish_node(&s));
        let text = handle.render();
        assert!(
            has(
                &text,
                "estudely_queries_sent_total{method=\"get_peers\"} 25"
            ),
            "{text}"
        );
    }

    #[test]
    fn fetch_failures_are_labelled_by_reason() {
        let stats = FetchStats {
            infohashes: 92,
            obtained: 80,
            failures: BTreeMap::from([(FailureKind::Timeout, 12), (FailureKind::NoUtMetadata, 2)]),
            obtained_utp: 30,
            encrypted: 5,
        };
        let text = rendered(|| {
            publish_fetch(&stats);
            publish_fetch_backlog(17);
        });
        for line in [
            "estudely_metadata_infohashes_total 92",
            "estudely_metadata_fetched_total 80",
            "estudely_metadata_fetched_by_transport_total{transport=\"tcp\"} 50",
            "estudely_metadata_fetched_by_transport_total{transport=\"utp\"} 30",
            "estudely_metadata_encrypted_total 5",
            "estudely_metadata_failed_total{reason=\"timeout\"} 12",
            "estudely_metadata_failed_total{reason=\"no_ut_metadata\"} 2",
            "estudely_fetch_backlog 17",
        ] {
            assert!(has(&text, line), "no `{line}` in:\n{text}");
        }
        assert!(!text.contains("reason=\"refused\""), "{text}");
    }

    #[test]
    fn index_figures_are_named() {
        let text = rendered(|| {
            publish_index(&IndexFigures {
                filter_lookups: 120,
                filter_known: 100,
                filter_bytes: 1_323_680,
                queue: 3,
                queue_waits: 7,
                leases_swept: 2,
                claims_refused: 4,
                rescrapes_sent: 9,
                rescrapes_answered: 6,
                rescrapes_empty: 3,
                available: false,
                held: 12,
                outages: 1,
            })
        });
        for line in [
            "estudely_index_filter_lookups_total 120",
            "estudely_index_filter_known_total 100",
            "estudely_index_filter_bytes 1323680",
            "estudely_store_queue 3",
            "estudely_store_queue_waits_total 7",
            "estudely_leases_swept_total 2",
            "estudely_claims_refused_total 4",
            "estudely_rescrapes_total{outcome=\"sent\"} 9",
            "estudely_rescrapes_total{outcome=\"answered\"} 6",
            "estudely_rescrapes_total{outcome=\"empty\"} 3",
            "estudely_index_available 0",
            "estudely_store_held 12",
            "estudely_index_outages_total 1",
        ] {
            assert!(has(&text, line), "no `{line}` in:\n{text}");
        }
    }

    #[test]
    fn db_writes_are_a_histogram_in_seconds() {
        let text = rendered(|| {
            record_db_write(0.003, 100);
            record_db_write(0.2, 50);
        });
        for line in [
            "# TYPE estudely_db_write_seconds histogram",
            "estudely_db_write_seconds_bucket{le=\"0.005\"} 1",
            "estudely_db_write_seconds_bucket{le=\"0.25\"} 2",
            "estudely_db_write_seconds_bucket{le=\"+Inf\"} 2",
            "estudely_db_write_seconds_count 2",
            "estudely_db_rows_written_total 150",
        ] {
            assert!(has(&text, line), "no `{line}` in:\n{text}");
        }
    }
}
