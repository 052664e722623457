//! The XML of the Torznab API: capabilities, result feeds (RSS 2.0 with `torznab:attr`s) and
//! Newznab errors. Written by hand: a handful of fixed elements, every text escaped and
//! every character XML 1.0 forbids dropped, which a templating crate would not do for us.

use std::fmt::Write as _;

use estudely_report::format::Utc;
use estudely_store::StoredTorrent;

use super::cats::{codes_of, Code, CATEGORIES};
use crate::view::magnet;

/// The Torznab namespace.
const TORZNAB_NS: &str = "http://torznab.com/schemas/2015/feed";

/// `s` as XML text or attribute value: markup escaped, and the characters XML 1.0 does not
/// allow dropped (the report's escaping, which its SVG charts need too).
pub fn text(s: &str) -> String {
    estudely_report::escape(s)
}

/// `Mon, 07 Dec 2026 01:18:33 +0000` (RFC 2822, as RSS wants).
pub fn rfc2822(t: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let u = Utc::from_unix(t);
    let weekday = DAYS[t.div_euclid(86_400).rem_euclid(7) as usize];
    let month = MONTHS[(u.month.clamp(1, 12) - 1) as usize];
    format!(
        "{weekday}, {:02} {month} {:04} {:02}:{:02}:{:02} +0000",
        u.day, u.year, u.hour, u.minute, u.second
    )
}

/// A Newznab error: `<error code="201" description="..."/>`.
pub fn error(code: u16, description: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<error code=\"{code}\" description=\"{}\"/>\n",
        text(description)
    )
}

/// `t=caps`: what can be searched, with which parameters, the limits and the categories.
pub fn caps(default_limit: usize, max_limit: usize) -> String {
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<caps>\n");
    s.push_str("<server title=\"estudely\" strapline=\"An index of the BitTorrent DHT\"/>\n");
    let _ = writeln!(
        s,
        "<limits default=\"{default_limit}\" max=\"{max_limit}\"/>"
    );
    s.push_str(
        "<searching>\n\
         <search available=\"yes\" supportedParams=\"q\"/>\n\
         <tv-search available=\"yes\" supportedParams=\"q,season,ep\"/>\n\
         <movie-search available=\"yes\" supportedParams=\"q,year\"/>\n\
         <music-search available=\"yes\" supportedParams=\"q\"/>\n\
         <audio-search available=\"yes\" supportedParams=\"q\"/>\n\
         <book-search available=\"yes\" supportedParams=\"q\"/>\n\
         </searching>\n<categories>\n",
    );
    for top in CATEGORIES.iter().filter(|c| c.parent.is_none()) {
        let subs: Vec<&Code> = CATEGORIES
            .iter()
            .filter(|c| c.parent == Some(top.id))
            .collect();
        if subs.is_empty() {
            let _ = writeln!(s, "<category id=\"{}\" name=\"{}\"/>", top.id, top.name);
            continue;
        }
        let _ = writeln!(s, "<category id=\"{}\" name=\"{}\">", top.id, top.name);
        for sub in subs {
            let _ = writeln!(s, "<subcat id=\"{}\" name=\"{}\"/>", sub.id, sub.name);
        }
        s.push_str("</category>\n");
    }
    s.push_str("</categories>\n</caps>\n");
    s
}

/// A result feed: `items` (already the page asked for), `offset`, and whether more follow.
pub fn feed(base: &str, items: &[StoredTorrent], offset: usize, more: bool) -> String {
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <rss version=\"2.0\" xmlns:atom=\"http://www.w3.org/2005/Atom\" xmlns:torznab=\"{TORZNAB_NS}\">\n\
         <channel>\n\
         <atom:link href=\"{}/torznab/api\" rel=\"self\" type=\"application/rss+xml\"/>\n\
         <title>estudely</title>\n\
         <description>An index of the BitTorrent DHT, built by sampling (BEP 51)</description>\n\
         <link>{}/</link>\n\
         <language>en-us</language>\n",
        text(base),
        text(base)
    );
    // The total is not counted (it would scan the index): it says whether a next page exists.
    let total = offset + items.len() + usize::from(more);
    let _ = writeln!(
        s,
        "<torznab:response offset=\"{offset}\" total=\"{total}\"/>"
    );
    for st in items {
        item(&mut s, base, st);
    }
    s.push_str("</channel>\n</rss>\n");
    s
}

/// One `<item>`.
fn item(s: &mut String, base: &str, st: &StoredTorrent) {
    let t = &st.torrent;
    let key = t.info_hash.to_hex();
    let name = estudely_peer_wire::info::display(&t.name);
    let link = magnet(st);
    let magnet = text(&link);
    let codes = codes_of(t);
    let _ = writeln!(
        s,
        "<item>\n<title>{}</title>\n<guid isPermaLink=\"false\">{key}</guid>\n\
         <comments>{}/torrent/{key}</comments>\n<pubDate>{}</pubDate>\n<size>{}</size>\n\
         <link>{magnet}</link>",
        text(&name),
        text(base),
        rfc2822(t.discovered),
        t.total_bytes
    );
    for c in &codes {
        let _ = writeln!(s, "<category>{c}</category>");
    }
    let _ = writeln!(
        s,
        "<enclosure url=\"{magnet}\" length=\"{}\" type=\"application/x-bittorrent;x-scheme-handler/magnet\"/>",
        t.total_bytes
    );
    let mut attr = |name: &str, value: &str| {
        let _ = writeln!(
            s,
            "<torznab:attr name=\"{name}\" value=\"{}\"/>",
            text(value)
        );
    };
    for c in &codes {
        attr("category", &c.to_string());
    }
    attr("infohash", &key);
    attr("magneturl", &link);
    attr("size", &t.total_bytes.to_string());
    attr("files", &t.file_count.to_string());
    if let Some(n) = t.seeds_estimate {
        attr("seeders", &n.to_string());
    }
    if let Some(n) = t.peers_estimate {
        attr("leechers", &n.to_string());
    }
    if t.seeds_estimate.is_some() || t.peers_estimate.is_some() {
        let peers = t
            .seeds_estimate
            .unwrap_or(0)
            .saturating_add(t.peers_estimate.unwrap_or(0));
        attr("peers", &peers.to_string());
    }
    if let Some(r) = &t.release {
        if let Some(y) = r.year {
            attr("year", &y.to_string());
        }
        if let Some(n) = r.season {
            attr("season", &n.to_string());
        }
        if let Some(n) = r.episode {
            attr("episode", &n.to_string());
        }
        if let Some(res) = &r.resolution {
            attr("resolution", res);
        }
    }
    s.push_str("</item>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_escapes_markup_and_drops_what_xml_forbids() {
        assert_eq!(text("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
        assert_eq!(text("x\u{1b}[31m\0y\u{fffe}"), "x[31my");
        assert_eq!(text("tab\there\nok"), "tab\there\nok");
    }

    #[test]
    fn rfc2822_dates() {
        assert_eq!(rfc2822(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc2822(1_796_606_313), "Mon, 07 Dec 2026 01:18:33 +0000");
        assert_eq!(rfc2822(-86_400), "Wed, 31 Dec 1969 00:00:00 +0000");
    }
}
