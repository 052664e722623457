//! End to end: `estudely simulate` as a user runs it. The same flags and seed print the same
//! figures (all but memory and wall time), coverage only grows, the CSV loads as a table,
//! sharding finds more in the same virtual time, and bad flags are one-line errors. Nothing
//! is sent on any network: the DHT is computed.

use std::process::{Command, Output};

fn estudely(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_estudely"))
        .args(args)
        .output()
        .expect("run estudely")
}

/// The CSV rows (header first) and the `#` lines, with the memory and wall-time columns
/// and the memory line (which vary from run to run) left out.
fn figures(out: &Output) -> (Vec<Vec<String>>, Vec<String>) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for line in text.lines() {
        if let Some(note) = line.strip_prefix("# ") {
            if !note.starts_with("memory:") {
                notes.push(note.to_string());
            }
        } else {
            let cols: Vec<String> = line.split(',').map(str::to_string).collect();
            assert_eq!(cols.len(), 10, "{line}");
            rows.push(cols[..8].to_vec());
        }
    }
    (rows, notes)
}

const SMALL: [&str; 6] = [
    "simulate",
    "--rate",
    "100",
    "--format",
    "csv",
    "--check-etiquette",
];
const HALF_HOUR: [&str; 6] = ["--nodes", "30000", "--hours", "0.5", "--every", "5"];

#[test]
fn same_seed_same_figures_and_coverage_grows() {
    let a = figures(&estudely(
        &[&SMALL[..], &HALF_HOUR, &["--seed", "7"]].concat(),
    ));
    let b = figures(&estudely(
        &[&SMALL[..], &HALF_HOUR, &["--seed", "7"]].concat(),
    ));
    assert_eq!(a, b, "same seed, same figures");
    let (rows, notes) = &a;
    assert_eq!(
        rows[0],
        [
            "hours",
            "queries",
            "samples_sent",
            "samples_answered",
            "found",
            "coverage_pct",
            "nodes_known",
            "nodes_rested"
        ]
    );
    assert_eq!(rows.len(), 1 + 6, "one line per 5 virtual minutes");
    let found: Vec<u64> = rows[1..].iter().map(|r| r[4].parse().unwrap()).collect();
    assert!(found.windows(2).all(|w| w[0] <= w[1]), "{found:?}");
    assert!(found[5] > 0);
    let queries: u64 = rows[6][1].parse().unwrap();
    assert!(queries <= 100 * 1_800 + 100, "rate limit: {queries}");
    assert!(
        notes
            .iter()
            .any(|n| n.contains("etiquette: 0 samples inside")),
        "{notes:?}"
    );
    let c = figures(&estudely(
        &[&SMALL[..], &HALF_HOUR, &["--seed", "8"]].concat(),
    ));
    assert_ne!(a.0, c.0, "another seed, another network");
}

#[test]
fn two_shards_find_more_in_the_same_time() {
    // Six virtual minutes: well before one crawler has met the whole network.
    let found = |shards: &str| {
        let args = [
            &SMALL[..],
            &["--shards", shards, "--hours", "0.1", "--every", "1"],
        ]
        .concat();
        let (rows, _) = figures(&estudely(&args));
        rows.last().unwrap()[4].parse::<u64>().unwrap()
    };
    let (one, two) = (found("1"), found("2"));
    assert!(two * 10 > one * 18, "one crawler {one}, two shards {two}");
}

#[test]
fn bad_flags_are_one_line_errors() {
    for (flag, value) in [
        ("--rate", "0"),
        ("--hours", "-1"),
        ("--nodes", "10"),
        ("--shards", "0"),
        ("--loss", "1.5"),
        ("--every", "x"),
    ] {
        let out = estudely(&["simulate", flag, value]);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.lines().next().unwrap().contains(value), "{flag}: {err}");
        assert!(out.stdout.is_empty());
    }
}
