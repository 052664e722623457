//! The report's charts as SVG drawn on the server: no JavaScript, no plotting crate.
//!
//! We draw them ourselves because plotters' text layout needs a font engine (ttf-parser /
//! ab_glyph and a bundled font) for what are six simple bar charts; here the browser lays
//! out the text. Every chart is a complete `<svg>` with a `<title>`, a `viewBox` and no
//! fixed pixel width (it fills its container), text large enough on a 360 px phone, the
//! Okabe–Ito colours (distinguishable with the common colour-vision deficiencies), and a
//! data table beside it for screen readers and CSS-less reading. All text from the data goes
//! through [`escape`]; data bars are `<rect class="bar">`, one per non-zero value.

use std::fmt::Write as _;

use super::format::{escape, human_count, thousands, time_label, truncate};
use super::{Report, SIZE_LABELS};

/// One chart: its SVG and the numbers behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chart {
    /// A stable identifier: `discoveries`, `outcomes`, `sizes`, `versions`, `clients`,
    /// `intervals`.
    pub id: &'static str,
    /// A heading for it.
    pub title: &'static str,
    /// The complete `<svg>` element.
    pub svg: String,
    /// Its data as (label, value) rows, unescaped (escape them when writing HTML).
    pub table: Vec<(String, String)>,
}

/// Width of every chart's viewBox; text is sized for this drawn at 360 px.
const W: f64 = 480.0;
/// Font size in viewBox units.
const FONT: f64 = 15.0;
/// Rough width of one character at [`FONT`] (for layout only).
const CHAR: f64 = 8.0;
/// Okabe–Ito blue, orange, bluish green.
const COLOURS: [&str; 3] = ["#0072B2", "#E69F00", "#009E73"];
/// Text and axis colour.
const INK: &str = "#222";
/// Clients shown before the rest are summed as `others`.
pub const TOP_CLIENTS: usize = 12;
/// Longest label drawn (the table has it whole).
const MAX_LABEL: usize = 24;

/// The report's seven charts, in the order `discoveries`, `outcomes`, `sizes`, `versions`,
/// `categories`, `clients`, `intervals`.
pub fn charts(r: &Report) -> Vec<Chart> {
    vec![
        discoveries(r),
        outcomes(r),
        sizes(r),
        versions(r),
        categories(r),
        clients(r),
        intervals(r),
    ]
}

fn discoveries(r: &Report) -> Chart {
    let id = "discoveries";
    let title = "Torrents discovered over time (UTC), by source";
    let series = ["sample", "announce", "get_peers"];
    let cats: Vec<(String, Vec<u64>)> = r
        .timeline
        .iter()
        .map(|p| {
            (
                time_label(p.start, r.bucket_secs, true),
                vec![p.sample, p.announce, p.get_peers],
            )
        })
        .collect();
    let table = r
        .timeline
        .iter()
        .map(|p| {
            (
                time_label(p.start, r.bucket_secs, false),
                format!(
                    "sample {} · announce {} · get_peers {}",
                    p.sample, p.announce, p.get_peers
                ),
            )
        })
        .collect();
    let svg = columns(id, title, &cats, &series, false);
    Chart {
        id,
        title,
        svg,
        table,
    }
}

fn outcomes(r: &Report) -> Chart {
    let rows = plain(&r.outcomes);
    bars_chart("outcomes", "Metadata outcomes", &rows)
}

fn sizes(r: &Report) -> Chart {
    let id = "sizes";
    let title = "Torrents by total size";
    let cats: Vec<(String, Vec<u64>)> = SIZE_LABELS
        .iter()
        .enumerate()
        .map(|(i, l)| ((*l).to_owned(), vec![r.sizes.get(i).copied().unwrap_or(0)]))
        .collect();
    let any = cats.iter().any(|c| c.1[0] > 0);
    let table = cats
        .iter()
        .map(|(l, v)| (l.clone(), v[0].to_string()))
        .collect();
    let svg = if any {
        columns(id, title, &cats, &["torrents"], true)
    } else {
        no_data(id, title)
    };
    Chart {
        id,
        title,
        svg,
        table: if any { table } else { Vec::new() },
    }
}

fn versions(r: &Report) -> Chart {
    let order = ["v1", "v2", "hybrid"];
    let mut v = r.versions.clone();
    v.sort_by_key(|(k, _)| {
        order
            .iter()
            .position(|o| *o == k.as_str())
            .unwrap_or(order.len())
    });
    bars_chart("versions", "Torrents by metadata version", &with_shares(&v))
}

/// Each count with its share of the sum: `1,234 (12.3 %)`.
fn with_shares(pairs: &[(String, u64)]) -> Vec<(String, u64, String)> {
    let sum = pairs.iter().fold(0u64, |a, (_, n)| a.saturating_add(*n));
    pairs
        .iter()
        .map(|(k, n)| {
            let pct = if sum == 0 {
                0.0
            } else {
                *n as f64 * 100.0 / sum as f64
            };
            (k.clone(), *n, format!("{} ({pct:.1} %)", thousands(*n)))
        })
        .collect()
}

fn categories(r: &Report) -> Chart {
    bars_chart(
        "categories",
        "Torrents by category",
        &with_shares(&r.categories),
    )
}

fn clients(r: &Report) -> Chart {
    let mut rows = plain(&r.clients[..r.clients.len().min(TOP_CLIENTS)]);
    let others = r
        .clients
        .iter()
        .skip(TOP_CLIENTS)
        .fold(0u64, |a, (_, n)| a.saturating_add(*n));
    if r.clients.len() > TOP_CLIENTS {
        rows.push(("others".to_owned(), others, thousands(others)));
    }
    bars_chart("clients", "Nodes that answered a sample, by client", &rows)
}

fn intervals(r: &Report) -> Chart {
    let id = "intervals";
    let title = "Nodes by the sample interval they asked for";
    let cats: Vec<(String, Vec<u64>)> = r
        .intervals
        .iter()
        .map(|(l, n)| (l.clone(), vec![*n]))
        .collect();
    let table = r
        .intervals
        .iter()
        .map(|(l, n)| (l.clone(), n.to_string()))
        .collect();
    Chart {
        id,
        title,
        svg: columns(id, title, &cats, &["nodes"], true),
        table,
    }
}

/// (label, count) → (label, count, shown value).
fn plain(pairs: &[(String, u64)]) -> Vec<(String, u64, String)> {
    pairs
        .iter()
        .map(|(k, n)| (k.clone(), *n, thousands(*n)))
        .collect()
}

/// A horizontal bar chart and its table (the shown values).
fn bars_chart(id: &'static str, title: &'static str, rows: &[(String, u64, String)]) -> Chart {
    Chart {
        id,
        title,
        svg: bars(id, title, rows),
        table: rows
            .iter()
            .map(|(l, _, s)| (l.clone(), s.clone()))
            .collect(),
    }
}

/// The opening `<svg>` tag and its `<title>`.
fn open(id: &str, title: &str, height: f64) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {height:.0}\" \
         width=\"100%\" role=\"img\" aria-labelledby=\"svg-{id}-title\" \
         font-family=\"system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif\" \
         font-size=\"{FONT}\" fill=\"{INK}\">\
         <title id=\"svg-{id}-title\">{}</title>",
        escape(title)
    )
}

/// A chart that says "no data".
pub fn no_data(id: &str, title: &str) -> String {
    let mut s = open(id, title, 80.0);
    let _ = write!(
        s,
        "<rect class=\"frame\" x=\"0.5\" y=\"0.5\" width=\"{}\" height=\"79\" fill=\"none\" \
         stroke=\"#bbb\" stroke-dasharray=\"4 4\"/>\
         <text x=\"{}\" y=\"46\" text-anchor=\"middle\" fill=\"#555\">no data</text></svg>",
        W - 1.0,
        W / 2.0
    );
    s
}

/// Horizontal bars, one row each: the label left, the bar, the shown value after it.
fn bars(id: &str, title: &str, rows: &[(String, u64, String)]) -> String {
    if rows.iter().all(|r| r.1 == 0) {
        return no_data(id, title);
    }
    let row_h = 26.0;
    let labels: Vec<String> = rows.iter().map(|r| truncate(&r.0, MAX_LABEL)).collect();
    let label_w = labels
        .iter()
        .map(|l| l.chars().count() as f64 * CHAR)
        .fold(0.0, f64::max)
        .min(W * 0.42)
        + 8.0;
    let value_w = rows
        .iter()
        .map(|r| r.2.chars().count() as f64 * CHAR)
        .fold(0.0, f64::max)
        + 8.0;
    let max = rows.iter().map(|r| r.1).max().unwrap_or(1).max(1) as f64;
    let span = (W - label_w - value_w - 4.0).max(40.0);
    let height = rows.len() as f64 * row_h + 8.0;
    let mut s = open(id, title, height);
    for (i, ((full, n, shown), label)) in rows.iter().zip(&labels).enumerate() {
        let y = 4.0 + i as f64 * row_h;
        let mid = y + row_h / 2.0 + FONT * 0.35;
        let w = if *n == 0 {
            0.0
        } else {
            (*n as f64 / max * span).max(1.0)
        };
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{mid:.1}\" text-anchor=\"end\">{}</text>",
            label_w - 6.0,
            escape(label)
        );
        if *n > 0 {
            let _ = write!(
                s,
                "<rect class=\"bar\" x=\"{label_w:.1}\" y=\"{:.1}\" width=\"{w:.1}\" \
                 height=\"{:.1}\" fill=\"{}\"><title>{}: {}</title></rect>",
                y + 4.0,
                row_h - 8.0,
                COLOURS[0],
                escape(&truncate(full, 200)),
                escape(shown)
            );
        }
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{mid:.1}\">{}</text>",
            label_w + w + 4.0,
            escape(shown)
        );
    }
    let _ = write!(
        s,
        "<path d=\"M{label_w:.1} 2V{:.1}\" stroke=\"{INK}\" fill=\"none\"/></svg>",
        height - 2.0
    );
    s
}

/// A step of 1, 2 or 5 × 10ⁿ that splits `0..=max` into about four, and the axis top.
fn ticks(max: u64) -> (u64, u64) {
    let rough = (max / 4).max(1);
    let mut p = 1u64;
    while p.saturating_mul(10) <= rough {
        p *= 10;
    }
    let step = [1, 2, 5, 10]
        .iter()
        .map(|m| p.saturating_mul(*m))
        .find(|s| *s >= rough)
        .unwrap_or(p.saturating_mul(10));
    let top = max.div_ceil(step).max(1).saturating_mul(step);
    (step, top)
}

/// Vertical columns, stacked by series (a legend above when more than one), y axis with
/// gridlines. `all_labels`: label every column (rotated when they would collide) rather
/// than every k-th.
fn columns(
    id: &str,
    title: &str,
    cats: &[(String, Vec<u64>)],
    series: &[&str],
    all_labels: bool,
) -> String {
    let totals: Vec<u64> = cats
        .iter()
        .map(|c| c.1.iter().fold(0u64, |a, b| a.saturating_add(*b)))
        .collect();
    if totals.iter().all(|t| *t == 0) {
        return no_data(id, title);
    }
    let (step, top) = ticks(totals.iter().copied().max().unwrap_or(1));
    let labels: Vec<String> = cats.iter().map(|c| truncate(&c.0, MAX_LABEL)).collect();
    let longest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(1) as f64 * CHAR;
    let mut left = human_count(top).len() as f64 * CHAR + 10.0;
    let right = 8.0;
    let n = cats.len().max(1) as f64;
    let mut slot = (W - left - right) / n;
    let rotate = all_labels && longest + 6.0 > slot;
    if rotate {
        // A label rotated by 40° reaches cos 40° of its length left of its column's middle.
        let first = labels.first().map_or(0, |l| l.chars().count()) as f64 * CHAR * 0.77;
        left = left.max(first - slot / 2.0 + 4.0);
        slot = (W - left - right) / n;
    }
    let every = if all_labels {
        1
    } else {
        ((longest + 10.0) / slot).ceil().max(1.0) as usize
    };
    let legend = if series.len() > 1 { 26.0 } else { 0.0 };
    let top_y = legend + 14.0;
    let plot_h = 200.0;
    let base = top_y + plot_h;
    let bottom = if rotate { longest * 0.72 + 14.0 } else { 24.0 };
    let height = base + bottom;
    let mut s = open(id, title, height);
    // Legend.
    let mut x = left;
    if series.len() > 1 {
        for (k, name) in series.iter().enumerate() {
            let _ = write!(
                s,
                "<rect class=\"key\" x=\"{x:.1}\" y=\"6\" width=\"12\" height=\"12\" fill=\"{}\"/>\
                 <text x=\"{:.1}\" y=\"17\">{}</text>",
                COLOURS[k % COLOURS.len()],
                x + 16.0,
                escape(name)
            );
            x += 16.0 + name.chars().count() as f64 * CHAR + 18.0;
        }
    }
    // Gridlines and y labels.
    let y_of = |v: u64| base - v as f64 / top as f64 * plot_h;
    let mut v = 0;
    while v <= top {
        let y = y_of(v);
        let _ = write!(
            s,
            "<path d=\"M{left:.1} {y:.1}H{:.1}\" stroke=\"{}\" fill=\"none\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - right,
            if v == 0 { INK } else { "#ddd" },
            left - 5.0,
            y + FONT * 0.35,
            human_count(v)
        );
        match v.checked_add(step) {
            Some(next) => v = next,
            None => break,
        }
    }
    // Columns and x labels.
    let bar_w = (slot * 0.8).max(1.0);
    for (i, ((full, values), label)) in cats.iter().zip(&labels).enumerate() {
        let x = left + i as f64 * slot + (slot - bar_w) / 2.0;
        let mut below = 0u64;
        for (k, v) in values.iter().enumerate() {
            if *v == 0 {
                continue;
            }
            let (y1, y0) = (y_of(below.saturating_add(*v)), y_of(below));
            below = below.saturating_add(*v);
            let name = series.get(k).copied().unwrap_or("");
            let _ = write!(
                s,
                "<rect class=\"bar\" x=\"{x:.1}\" y=\"{y1:.1}\" width=\"{bar_w:.1}\" \
                 height=\"{:.1}\" fill=\"{}\" stroke=\"#fff\" stroke-width=\"0.5\">\
                 <title>{}: {name} {}</title></rect>",
                (y0 - y1).max(0.5),
                COLOURS[k % COLOURS.len()],
                escape(full),
                thousands(*v)
            );
        }
        if i % every != 0 {
            continue;
        }
        let cx = left + (i as f64 + 0.5) * slot;
        if rotate {
            let _ = write!(
                s,
                "<text transform=\"translate({cx:.1} {:.1}) rotate(-40)\" \
                 text-anchor=\"end\">{}</text>",
                base + 12.0,
                escape(label)
            );
        } else {
            let anchor = if every > 1 { "start" } else { "middle" };
            let tx = if every > 1 { x } else { cx };
            let half = if every > 1 { 0.0 } else { 0.5 };
            if tx + label.chars().count() as f64 * CHAR * (1.0 - half) > W {
                continue;
            }
            let _ = write!(
                s,
                "<text x=\"{tx:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{}</text>",
                base + FONT + 4.0,
                escape(label)
            );
        }
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::super::format::well_formed;
    use super::super::TimelinePoint;
    use super::*;

    const HOSTILE: &str = "<script>alert(1)</script>]]>\x01\x1b&'\"";

    fn full() -> Report {
        let mut clients: Vec<(String, u64)> =
            (0..15).map(|i| (format!("client {i}"), 100 - i)).collect();
        clients[3].0 = HOSTILE.into();
        Report {
            input: HOSTILE.into(),
            generated: 1_714_566_896,
            totals: vec![("torrents".into(), 10)],
            bucket_secs: 3_600,
            timeline: vec![
                TimelinePoint {
                    start: 1_714_564_800,
                    sample: 3,
                    announce: 1,
                    get_peers: 0,
                },
                TimelinePoint {
                    start: 1_714_568_400,
                    ..TimelinePoint::default()
                },
                TimelinePoint {
                    start: 1_714_572_000,
                    sample: 2,
                    announce: 0,
                    get_peers: 4,
                },
            ],
            outcomes: vec![
                ("stored".into(), 10),
                ("no_peers".into(), 5),
                ("fetch_failed_timeout".into(), 2),
            ],
            sizes: vec![1, 0, 4, 0, 0, 3, 0, 0, 0, 2],
            versions: vec![("hybrid".into(), 1), ("v1".into(), 8), ("v2".into(), 1)],
            categories: vec![("movie".into(), 5), ("tv".into(), 3), ("other".into(), 2)],
            clients,
            intervals: vec![("1 min".into(), 3), ("6 h".into(), 7)],
        }
    }

    fn bars_in(svg: &str) -> usize {
        svg.matches("<rect class=\"bar\"").count()
    }

    #[test]
    fn every_chart_is_one_well_formed_svg() {
        for r in [full(), Report::default()] {
            let cs = charts(&r);
            let ids: Vec<_> = cs.iter().map(|c| c.id).collect();
            assert_eq!(
                ids,
                [
                    "discoveries",
                    "outcomes",
                    "sizes",
                    "versions",
                    "categories",
                    "clients",
                    "intervals"
                ]
            );
            for c in cs {
                assert_eq!(c.svg.matches("<svg").count(), 1, "{}", c.id);
                assert!(c
                    .svg
                    .starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
                assert!(c.svg.ends_with("</svg>"), "{}", c.id);
                assert!(c.svg.contains("role=\"img\"") && c.svg.contains("<title"));
                assert!(!c.svg.contains("width=\"480\""), "{}: fixed width", c.id);
                well_formed(&c.svg).unwrap_or_else(|e| panic!("{}: {e}\n{}", c.id, c.svg));
                assert!(!c.svg.contains("<script"), "{}", c.id);
            }
        }
    }

    #[test]
    fn empty_charts_say_so() {
        for c in charts(&Report::default()) {
            assert!(c.svg.contains(">no data<"), "{}", c.id);
            assert_eq!(bars_in(&c.svg), 0);
            assert!(c.table.is_empty(), "{}", c.id);
        }
    }

    #[test]
    fn one_bar_per_value_and_tables_match() {
        let r = full();
        let cs = charts(&r);
        let [disc, out, size, ver, cat, cli, int] = &cs[..] else {
            panic!("{} charts", cs.len())
        };
        // One bar per category, largest first as given.
        assert_eq!(bars_in(&cat.svg), 3);
        assert_eq!(cat.table[0].0, "movie");
        assert_eq!(cat.table[0].1, "5 (50.0 %)");
        // Non-zero timeline values: 3, 1, 2, 4.
        assert_eq!(bars_in(&disc.svg), 4);
        assert_eq!(disc.table.len(), 3);
        assert_eq!(disc.table[0].0, "2024-05-01 12:00");
        assert_eq!(disc.table[2].1, "sample 2 · announce 0 · get_peers 4");
        assert!(disc.svg.contains(">get_peers<"), "legend");

        assert_eq!(bars_in(&out.svg), 3);
        let want: Vec<_> = r
            .outcomes
            .iter()
            .map(|(k, n)| (k.clone(), n.to_string()))
            .collect();
        assert_eq!(out.table, want);

        assert_eq!(bars_in(&size.svg), 4);
        assert_eq!(size.table.len(), SIZE_LABELS.len());
        for (i, (l, v)) in size.table.iter().enumerate() {
            assert_eq!(
                (l.as_str(), v.parse::<u64>().unwrap()),
                (SIZE_LABELS[i], r.sizes[i])
            );
        }

        assert_eq!(bars_in(&ver.svg), 3);
        assert_eq!(ver.table[0], ("v1".into(), "8 (80.0 %)".into()));
        assert_eq!(ver.table[2], ("hybrid".into(), "1 (10.0 %)".into()));

        assert_eq!(bars_in(&cli.svg), TOP_CLIENTS + 1);
        assert_eq!(cli.table.len(), TOP_CLIENTS + 1);
        assert_eq!(cli.table[3].0, HOSTILE);
        let others: u64 = r.clients[TOP_CLIENTS..].iter().map(|c| c.1).sum();
        assert_eq!(
            cli.table[TOP_CLIENTS],
            ("others".into(), others.to_string())
        );
        assert!(cli.svg.contains("&lt;script&gt;alert(1)"));

        assert_eq!(bars_in(&int.svg), 2);
        assert_eq!(
            int.table,
            [("1 min".into(), "3".into()), ("6 h".into(), "7".into())]
        );
    }

    #[test]
    fn axes_are_round_and_wide_inputs_stay_finite() {
        assert_eq!(ticks(0), (1, 1));
        assert_eq!(ticks(7), (1, 7));
        assert_eq!(ticks(95), (50, 100));
        assert_eq!(ticks(1_234), (500, 1_500));
        let (step, top) = ticks(u64::MAX);
        assert!(step > 0 && top >= step);
        let mut r = full();
        r.sizes = vec![u64::MAX, 0, 1, 0, 0, 0, 0, 0, 0, 0];
        r.timeline = (0..60)
            .map(|i| TimelinePoint {
                start: i * 60,
                sample: i as u64,
                ..TimelinePoint::default()
            })
            .collect();
        r.bucket_secs = 60;
        for c in charts(&r) {
            assert!(!c.svg.contains("NaN") && !c.svg.contains("inf"), "{}", c.id);
            well_formed(&c.svg).unwrap();
        }
    }
}
