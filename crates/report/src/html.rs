//! `estudely report`'s output: one self-contained HTML5 page (inline style and SVG, no
//! script, no external URL) with the summary table and every chart, each with its data in a
//! `<details>` table. Readable on a phone, with CSS off, and on paper.
//!
//! Stable hooks for tests and scrapers: the summary is `<table id="summary">` with rows
//! `<tr data-key="torrents"><th>torrents</th><td data-value="123">123</td></tr>` (raw
//! integer in `data-value`); each chart is `<figure class="chart" id="chart-<id>">`.

use std::fmt::Write as _;

use super::charts::{charts, Chart};
use super::format::{escape, human_bytes, thousands, Utc};
use super::Report;

const STYLE: &str = "\
:root{color-scheme:light}
body{margin:0;font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#222;background:#fff}
main{max-width:48rem;margin:0 auto;padding:1rem}
h1{font-size:1.5rem;margin:.25rem 0}
h2{font-size:1.2rem;margin:1.5rem 0 .5rem;border-bottom:1px solid #ccc}
.meta{color:#555;margin:0 0 1rem}
code{overflow-wrap:anywhere}
table{border-collapse:collapse;margin:.25rem 0 1rem;max-width:100%}
th,td{padding:.15rem .5rem;border-bottom:1px solid #e4e4e4;text-align:left;vertical-align:top;overflow-wrap:anywhere}
td{text-align:right;font-variant-numeric:tabular-nums}
th[colspan]{padding-top:.75rem;color:#555;font-weight:600}
figure{margin:1.25rem 0 2rem;padding:0;break-inside:avoid;page-break-inside:avoid}
figcaption{font-weight:600;margin:0 0 .4rem}
figure svg{display:block;width:100%;max-width:36rem;height:auto}
details{margin-top:.4rem}
summary{cursor:pointer;color:#0b5394}
footer{color:#777;font-size:.85rem;margin-top:2rem}
@media print{
body{font-size:10pt}
main{max-width:none;padding:0}
h2{break-after:avoid;page-break-after:avoid}
details,footer{display:none}
figure svg{max-width:16cm}
}
";

/// The column heading of a chart's data table, by chart id.
fn label_heading(id: &str) -> &'static str {
    match id {
        "discoveries" => "bucket start (UTC)",
        "outcomes" => "outcome",
        "sizes" => "total size",
        "versions" => "version",
        "categories" => "category",
        "clients" => "client",
        "intervals" => "interval",
        _ => "label",
    }
}

/// The value heading of a chart's data table.
fn value_heading(id: &str) -> &'static str {
    match id {
        "discoveries" => "torrents by source",
        "clients" | "intervals" => "nodes",
        _ => "torrents",
    }
}

/// The whole report as one HTML5 document.
pub fn page(r: &Report) -> String {
    let generated = Utc::from_unix(r.generated);
    let input = escape(&r.input);
    let mut s = String::with_capacity(64 * 1024);
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n\
         <meta name=\"generator\" content=\"estudely\"/>\n\
         <title>Estudely report: {input}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n<main>\n\
         <h1>Estudely report</h1>\n\
         <p class=\"meta\">Input: <code id=\"input\">{input}</code><br/>\
         Generated: <time id=\"generated\" datetime=\"{}\">{}</time></p>\n",
        generated.rfc3339(),
        generated.long()
    );
    summary(&mut s, r);
    s.push_str("<h2>Charts</h2>\n");
    for c in charts(r) {
        figure(&mut s, &c);
    }
    let _ = write!(
        s,
        "<footer>Made by estudely {} from the DHT's public data. Times are UTC; sizes in \
         binary units (1 GiB = 2³⁰ bytes).</footer>\n</main>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION")
    );
    s
}

/// `<table id="summary">`: the totals, then versions and outcomes with their shares.
fn summary(s: &mut String, r: &Report) {
    s.push_str("<h2>Summary</h2>\n<table id=\"summary\">\n<tbody id=\"summary-totals\">\n");
    for (k, v) in &r.totals {
        let shown = if k == "total_bytes" {
            format!("{} ({})", thousands(*v), human_bytes(*v))
        } else {
            thousands(*v)
        };
        row(s, k, *v, &shown);
    }
    s.push_str("</tbody>\n");
    for (id, title, pairs) in [
        ("versions", "versions", &r.versions),
        ("categories", "categories", &r.categories),
        ("outcomes", "metadata outcomes", &r.outcomes),
    ] {
        if pairs.is_empty() {
            continue;
        }
        let _ = writeln!(
            s,
            "<tbody id=\"summary-{id}\">\n<tr><th colspan=\"2\" scope=\"rowgroup\">{title}</th></tr>"
        );
        let sum = pairs.iter().fold(0u64, |a, (_, n)| a.saturating_add(*n));
        for (k, v) in pairs {
            let pct = if sum == 0 {
                0.0
            } else {
                *v as f64 * 100.0 / sum as f64
            };
            row(s, k, *v, &format!("{} ({pct:.1} %)", thousands(*v)));
        }
        s.push_str("</tbody>\n");
    }
    s.push_str("</table>\n");
}

/// One summary row.
fn row(s: &mut String, key: &str, value: u64, shown: &str) {
    let key = escape(key);
    let _ = writeln!(
        s,
        "<tr data-key=\"{key}\"><th>{key}</th><td data-value=\"{value}\">{}</td></tr>",
        escape(shown)
    );
}

/// One `<figure>`: caption, SVG, and the data in a `<details>` table.
fn figure(s: &mut String, c: &Chart) {
    let _ = write!(
        s,
        "<figure class=\"chart\" id=\"chart-{}\">\n<figcaption>{}</figcaption>\n{}\n",
        c.id,
        escape(c.title),
        c.svg
    );
    if c.table.is_empty() {
        s.push_str("<p>No data in this input.</p>\n</figure>\n");
        return;
    }
    let _ = write!(
        s,
        "<details>\n<summary>Data</summary>\n<table class=\"data\">\n<thead><tr>\
         <th scope=\"col\">{}</th><th scope=\"col\">{}</th></tr></thead>\n<tbody>\n",
        label_heading(c.id),
        value_heading(c.id)
    );
    for (l, v) in &c.table {
        let _ = writeln!(
            s,
            "<tr><th scope=\"row\">{}</th><td>{}</td></tr>",
            escape(l),
            escape(v)
        );
    }
    s.push_str("</tbody>\n</table>\n</details>\n</figure>\n");
}

#[cfg(test)]
mod tests {
    use super::super::format::well_formed;
    use super::super::TimelinePoint;
    use super::*;

    const HOSTILE: &str = "<script>alert(1)</script>]]>\x07\"'&";

    fn report() -> Report {
        Report {
            input: format!("runs/{HOSTILE}.csv"),
            generated: 1_714_566_896,
            totals: vec![
                ("torrents".into(), 1_234),
                ("files".into(), 5_678),
                ("total_bytes".into(), 3 << 30),
                ("sightings".into(), 9),
                ("nodes".into(), 0),
            ],
            bucket_secs: 86_400,
            timeline: vec![TimelinePoint {
                start: 1_714_521_600,
                sample: 3,
                announce: 1,
                get_peers: 0,
            }],
            outcomes: vec![("stored".into(), 3), ("no_peers".into(), 1)],
            sizes: vec![0, 0, 1, 0, 0, 0, 0, 0, 0, 0],
            versions: vec![("v1".into(), 2), ("hybrid".into(), 2)],
            categories: vec![("movie".into(), 3), ("unclassified".into(), 1)],
            clients: vec![(HOSTILE.into(), 5), ("LT 2.0".into(), 3)],
            intervals: Vec::new(),
        }
    }

    /// The `data-value` of the summary row `key`.
    fn value(page: &str, key: &str) -> Option<u64> {
        let at = page.find(&format!("<tr data-key=\"{key}\">"))?;
        let rest = &page[at..];
        let v = &rest[rest.find("data-value=\"")? + 12..];
        v[..v.find('"')?].parse().ok()
    }

    #[test]
    fn the_page_is_self_contained_and_well_formed() {
        let p = page(&report());
        assert!(p.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
        assert!(p.contains("<meta name=\"generator\" content=\"estudely\"/>"));
        assert!(p.contains("name=\"viewport\""));
        assert!(p.contains("@media print"));
        assert!(!p.contains("<script"), "unescaped script");
        assert!(!p.contains("\x07"));
        assert!(
            !p.contains("http://") || p.matches("http://").count() == 7,
            "only xmlns"
        );
        assert!(!p.contains("https://") && !p.contains("src=") && !p.contains("href="));
        assert!(!p.contains("@import") && !p.contains("url("));
        well_formed(&p).unwrap_or_else(|e| panic!("{e}"));
        assert!(p.contains("<time id=\"generated\" datetime=\"2024-05-01T12:34:56Z\">"));
        assert!(p.contains("runs/&lt;script&gt;alert(1)&lt;/script&gt;]]&gt;&quot;&#39;&amp;.csv"));
    }

    #[test]
    fn the_summary_holds_the_totals_versions_and_outcomes() {
        let r = report();
        let p = page(&r);
        assert!(p.contains("<table id=\"summary\">"));
        for (k, v) in &r.totals {
            assert_eq!(value(&p, k), Some(*v), "{k}");
        }
        assert!(p.contains(
            "<tr data-key=\"torrents\"><th>torrents</th>\
             <td data-value=\"1234\">1,234</td></tr>"
        ));
        assert!(p.contains("3,221,225,472 (3 GiB)"));
        assert_eq!(value(&p, "hybrid"), Some(2));
        assert!(p.contains("2 (50.0 %)"));
        assert_eq!(value(&p, "no_peers"), Some(1));
    }

    #[test]
    fn every_chart_is_a_figure_with_its_svg_and_data() {
        let r = report();
        let p = page(&r);
        for c in charts(&r) {
            let at = p
                .find(&format!("<figure class=\"chart\" id=\"chart-{}\">", c.id))
                .unwrap_or_else(|| panic!("{}", c.id));
            let fig = &p[at..at + p[at..].find("</figure>").unwrap()];
            assert!(fig.contains("<svg ") && fig.contains("</svg>"), "{}", c.id);
            assert_eq!(fig.contains("<details>"), !c.table.is_empty(), "{}", c.id);
            for (l, v) in &c.table {
                assert!(
                    fig.contains(&format!(
                        "<th scope=\"row\">{}</th><td>{}</td>",
                        escape(l),
                        escape(v)
                    )),
                    "{}: {l}",
                    c.id
                );
            }
        }
        // The hostile client is only ever escaped, in the SVG and the table alike.
        assert!(p.matches("&lt;script&gt;alert(1)").count() >= 3);
        assert!(
            p.contains("<figure class=\"chart\" id=\"chart-intervals\">")
                && p.contains(">no data<")
        );
    }

    #[test]
    fn an_empty_report_is_still_a_page() {
        let p = page(&Report::default());
        well_formed(&p).unwrap();
        assert_eq!(p.matches("<figure class=\"chart\" id=\"chart-").count(), 7);
        assert_eq!(p.matches(">no data<").count(), 7);
    }
}
