//! `estudely report`: one self-contained HTML file of charts and tables, from an index or
//! from a `collect` / `export` / `crawl` output file, written atomically.

use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{ArgGroup, Args};

use crate::pipeline::store_thread::unix_now;
use crate::report::format::{human_bytes, quoted, thousands};
use crate::report::input::{self, InputFormat};
use crate::report::{html, Report};
use crate::store::DbUrl;

/// `estudely report --help` epilogue.
pub const EXAMPLES: &str = "Exactly one input: an index (--db), a CSV written by collect, demo,
`export --format csv` or crawl (told apart by the header), or JSONL written by collect,
`export --format jsonl` or crawl. The page has no script and no external link: open it in
any browser, mail it, print it. Inputs without a timeline, clients or versions (a CSV has
none of those) show those charts as \"no data\". A malformed row is an error naming
FILE:LINE, and no output is written.

Examples:
  estudely report --db estudely.sqlite -o report.html
  estudely report --csv run.csv -o run.html
  estudely export --format jsonl | estudely report --jsonl - -o - > report.html";

/// `estudely report ...`
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("input").required(true).args(["db", "csv", "jsonl"])))]
pub struct ReportArgs {
    /// An index: an SQLite file (`PATH`, `sqlite:PATH`) or a `postgres://` URL.
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,
    /// A CSV from collect, demo, export or crawl (`-`: stdin).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// JSON lines from collect, export or crawl (`-`: stdin).
    #[arg(long, value_name = "FILE")]
    pub jsonl: Option<PathBuf>,
    /// The HTML file to write (`-`: stdout).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: PathBuf,
}

/// Run `estudely report ...`.
pub fn run(args: ReportArgs) -> anyhow::Result<()> {
    let now = unix_now();
    let report = if let Some(db) = &args.db {
        let url = DbUrl::parse(db)?;
        let mut store = url.open_read_only()?;
        Report::from_store(store.as_mut(), url.to_string(), now)?
    } else if let Some(path) = &args.csv {
        input::from_file(path, InputFormat::Csv, now)?
    } else if let Some(path) = &args.jsonl {
        input::from_file(path, InputFormat::Jsonl, now)?
    } else {
        // clap's group makes one of them required.
        anyhow::bail!("give --db, --csv or --jsonl");
    };
    let page = html::page(&report);
    let target = if args.output == Path::new("-") {
        io::stdout().lock().write_all(page.as_bytes())?;
        "stdout".to_owned()
    } else {
        write_atomically(&args.output, page.as_bytes())?;
        args.output.display().to_string()
    };
    eprintln!("wrote {target}: {}", one_line(&report));
    Ok(())
}

/// `12 torrents, 30 files, 1.2 GiB, 40 infohashes, 55 peers`.
pub fn one_line(r: &Report) -> String {
    r.totals
        .iter()
        .map(|(k, v)| match k.as_str() {
            "total_bytes" => human_bytes(*v),
            k => format!("{} {}", thousands(*v), k.replace('_', " ")),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Write `bytes` to a temporary file beside `path`, then rename it over `path`: a reader
/// sees the old file or the whole new one, and a failure leaves no half file behind.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("-o {} names no file", quoted(&path.display().to_string())))?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let tmp_name = format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id());
    let tmp = dir.map_or_else(|| PathBuf::from(&tmp_name), |d| d.join(&tmp_name));
    let result = (|| -> io::Result<()> {
        let mut f = File::options().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_whole_files_and_leaves_nothing_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("r.html");
        write_atomically(&out, b"one").unwrap();
        write_atomically(&out, b"two").unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"two");
        let missing = dir.path().join("no/such/dir/r.html");
        assert!(write_atomically(&missing, b"x").is_err());
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["r.html"]);
        assert!(write_atomically(Path::new("/"), b"x").is_err());
    }

    #[test]
    fn the_summary_line_reads_well() {
        let r = Report {
            totals: vec![
                ("torrents".into(), 1_200),
                ("total_bytes".into(), 3 << 30),
                ("peers".into(), 4),
            ],
            ..Report::default()
        };
        assert_eq!(one_line(&r), "1,200 torrents, 3 GiB, 4 peers");
    }
}
