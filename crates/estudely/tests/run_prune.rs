//! Retention end to end: `estudely run` fills an index from a loopback testnet, `estudely
//! prune --max-torrents` deletes the oldest half, and the next `run` neither fetches nor
//! stores them again (their keys stay absent, and `skipped_deleted` counts each one it
//! found again); `run --max-torrents` prunes as it goes. Also the usage errors of `prune`.
//!
//! Loopback only: the testnet on 127.0.180.x (seeders on 127.0.181.x); runs bind
//! 127.0.182.x. Time limits only guard against a hang.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use estudely::store::{DbUrl, Store};
use estudely_krpc::InfoHash;

mod common;

use common::{run_bounded, Finished, BIN};

const HANG: Duration = Duration::from_secs(120);

fn run_ok(args: &[&str]) -> Finished {
    let done = run_bounded(args, HANG);
    assert!(done.status.success(), "{args:?}: {}", done.stderr);
    done
}

fn open(db: &Path) -> Box<dyn Store> {
    DbUrl::Sqlite(db.to_owned()).open_read_only().unwrap()
}

fn keys(db: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    open(db)
        .for_each_info_hash(&mut |k| {
            out.insert(k.to_hex());
        })
        .unwrap();
    out
}

fn counter(db: &Path, name: &str) -> u64 {
    let stats = open(db).stats().unwrap();
    stats
        .counters
        .iter()
        .find(|(n, _)| n == name)
        .map_or(0, |(_, v)| *v)
}

#[test]
fn pruned_torrents_never_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let net = "--nodes 16 --torrents 6 --no-metadata 0 --no-peers 0 --interval 10 \
               --seconds 600 --base-ip 127.0.180";
    let words: Vec<&str> = net.split_whitespace().collect();
    let (_net, boot, manifest) = common::testnet(&words, &dir.path().join("testnet.json"));
    let served = common::served_keys(&manifest);
    assert_eq!(served.len(), 6);
    let db = dir.path().join("index.sqlite");
    let db_s = db.to_str().unwrap();
    let run = |bind: &str, more: &[&str]| {
        let mut args = vec![
            "run",
            "--db",
            db_s,
            "--bootstrap",
            &boot,
            "--bind",
            bind,
            "--rate",
            "200",
            "--overall-timeout",
            "25",
        ];
        args.extend(more);
        let done = run_ok(&args);
        eprintln!("run:\n{}", done.stderr);
        done
    };

    run("127.0.182.1:0", &[]);
    assert_eq!(keys(&db), served, "every served torrent stored");

    // The dry run changes nothing; the prune deletes the 3 oldest.
    let prune = |more: &[&str]| {
        let mut args = vec!["prune", "--db", db_s, "--max-torrents", "3"];
        args.extend(more);
        let out = Command::new(BIN).args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let dry = prune(&["--dry-run"]);
    assert!(dry.starts_with("dry run: would delete 3 torrents"), "{dry}");
    assert_eq!(keys(&db), served);
    let done = prune(&[]);
    assert!(done.starts_with("deleted 3 torrents"), "{done}");
    assert!(
        done.contains("before: ") && done.contains("after: "),
        "{done}"
    );
    let kept = keys(&db);
    assert_eq!(kept.len(), 3);
    let pruned: BTreeSet<String> = served.difference(&kept).cloned().collect();
    assert_eq!(open(&db).stats().unwrap().deleted, 3);

    // The next run finds them again, knows them, and neither fetches nor stores them.
    let second = run("127.0.182.2:0", &[]);
    assert!(second.stderr.contains("3 torrents, "), "{}", second.stderr);
    assert_eq!(keys(&db), kept, "the pruned never come back");
    let mut store = open(&db);
    for ih in &pruned {
        let key = InfoHash::from_hex(ih).unwrap();
        assert!(store.torrent(&key).unwrap().is_none(), "{ih}");
        assert_eq!(store.sightings_of(&key, 10).unwrap().1.seen, 0, "{ih}");
    }
    drop(store);
    assert_eq!(
        counter(&db, "skipped_deleted"),
        3,
        "each pruned key found once"
    );

    // `run --max-torrents 2` prunes the oldest as it goes (at start here).
    run("127.0.182.3:0", &["--max-torrents", "2"]);
    assert_eq!(keys(&db).len(), 2);
    assert_eq!(counter(&db, "pruned_by_cap"), 1);
    assert_eq!(open(&db).stats().unwrap().deleted, 4);
}

#[test]
fn prune_refuses_no_rule_and_bad_values() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("index.sqlite");
    let db_s = db.to_str().unwrap();
    let prune = |args: &[&str]| {
        let out = Command::new(BIN).arg("prune").args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = prune(&["--db", db_s]);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(
        err.trim(),
        "error: prune needs a rule (--older-than, --category, --name, --larger-than, \
         --smaller-than, --max-torrents or --max-db-size): it never deletes everything"
    );
    let (code, err) = prune(&["--db", db_s, "--max-db-size", "20 parsecs"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--max-db-size") && err.contains("`20 parsecs` is not a size"),
        "{err}"
    );
    let (code, err) = prune(&["--db", db_s, "--older-than", "3y"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("`3y` is not an age"), "{err}");
    let (code, err) = prune(&["--db", db_s, "--name", "(unclosed"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not a valid regex"), "{err}");
    // A missing index is named, and not created.
    let (code, err) = prune(&["--db", db_s, "--max-torrents", "1"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("index.sqlite") && err.contains("no such file"),
        "{err}"
    );
    assert!(!db.exists());
}
