//! Text for reports: XML escaping of anything that came from the data, human units
//! (`1.2k`, `3.4 GiB`) and UTC times, shared by the charts and the HTML page.

use std::fmt::Write as _;

/// `s` made safe as XML (and HTML) text or attribute value: `& < > " '` become entities,
/// and characters that XML forbids (C0 controls other than tab and newline, U+FFFE, U+FFFF)
/// are dropped. Everything that comes from the data (torrent names, client names sent by
/// DHT nodes, file names, labels) goes through this before it is written into a page.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' => out.push(c),
            '\0'..='\x1f' | '\u{fffe}' | '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

/// At most `max` characters of `s`, the last one `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A count for an axis: `950`, `1.2k`, `12k`, `3.4M`, `5.6G`.
pub fn human_count(n: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")];
    for (unit, suffix) in UNITS {
        if n >= unit {
            return format!("{}{suffix}", one_decimal(n as f64 / unit as f64));
        }
    }
    n.to_string()
}

/// A size in binary units: `512 B`, `1.5 KiB`, `3.4 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{} {unit}", one_decimal(v))
}

/// `1.23` → `1.2`, `12.3` → `12`, `2.0` → `2`.
fn one_decimal(v: f64) -> String {
    let s = if v < 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    };
    s.strip_suffix(".0").map_or(s.clone(), str::to_owned)
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A UTC calendar time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc {
    /// Year.
    pub year: i64,
    /// Month, 1 to 12.
    pub month: u32,
    /// Day of the month, 1 to 31.
    pub day: u32,
    /// Hour, 0 to 23.
    pub hour: u32,
    /// Minute, 0 to 59.
    pub minute: u32,
    /// Second, 0 to 59.
    pub second: u32,
}

impl Utc {
    /// The UTC time of `t` unix seconds.
    pub fn from_unix(t: i64) -> Utc {
        let days = t.div_euclid(86_400);
        let secs = t.rem_euclid(86_400) as u32;
        let (year, month, day) = estudely_store::search_query::civil_from_days(days);
        // In range: a month is 1 to 12 and a day 1 to 31.
        let (month, day) = (month as u32, day as u32);
        Utc {
            year,
            month,
            day,
            hour: secs / 3_600,
            minute: secs / 60 % 60,
            second: secs % 60,
        }
    }

    /// `2024-05-01`.
    pub fn date(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }

    /// `2024-05-01 12:34:56 UTC`.
    pub fn long(&self) -> String {
        format!(
            "{} {:02}:{:02}:{:02} UTC",
            self.date(),
            self.hour,
            self.minute,
            self.second
        )
    }

    /// `2024-05-01T12:34:56Z`, for `<time datetime>`.
    pub fn rfc3339(&self) -> String {
        format!(
            "{}T{:02}:{:02}:{:02}Z",
            self.date(),
            self.hour,
            self.minute,
            self.second
        )
    }
}

/// The label of a timeline bucket starting at `t`, as precise as a bucket `bucket` seconds
/// wide needs: `2024-05-01 14:05` (under a day), `2024-05-01` (days and weeks), `2024-05`
/// (months), `2024` (years). `short` drops the year and date where it can (axis labels).
pub fn time_label(t: i64, bucket: i64, short: bool) -> String {
    let u = Utc::from_unix(t);
    let mut s = String::new();
    if bucket < 86_400 {
        if !short {
            s.push_str(&u.date());
            s.push(' ');
        } else if bucket >= 3_600 {
            let _ = write!(s, "{:02}-{:02} ", u.month, u.day);
        }
        let _ = write!(s, "{:02}:{:02}", u.hour, u.minute);
    } else if bucket < 30 * 86_400 {
        if short {
            let _ = write!(s, "{:02}-{:02}", u.month, u.day);
        } else {
            s = u.date();
        }
    } else if bucket < 365 * 86_400 {
        let _ = write!(s, "{:04}-{:02}", u.year, u.month);
    } else {
        let _ = write!(s, "{:04}", u.year);
    }
    s
}

/// An error-message rendering of untrusted text: one line, quoted, control characters and
/// quotes escaped, at most 80 characters.
pub fn quoted(s: &str) -> String {
    format!("{:?}", truncate(s, 80))
}

/// Test helper: whether `s` is well-formed XML-ish markup: every tag closed in order
/// (`<x/>` self-closes, `<!...>` and `<?...?>` are skipped), every `&` starts an entity, no
/// raw `<` in text. Returns what is wrong.
#[cfg(test)]
pub(crate) fn well_formed(s: &str) -> Result<(), String> {
    let mut stack: Vec<&str> = Vec::new();
    let mut rest = s;
    while let Some(at) = rest.find(['<', '&']) {
        let tail = &rest[at..];
        if tail.starts_with('&') {
            let end = tail.find(';').ok_or("& without ;")?;
            let ent = &tail[1..end];
            let ok = ["amp", "lt", "gt", "quot", "#39"].contains(&ent)
                || ent
                    .strip_prefix('#')
                    .is_some_and(|d| d.parse::<u32>().is_ok());
            if !ok {
                return Err(format!("bad entity &{ent};"));
            }
            rest = &tail[end + 1..];
            continue;
        }
        let end = tail.find('>').ok_or("< without >")?;
        let tag = &tail[1..end];
        rest = &tail[end + 1..];
        if tag.starts_with('!') || tag.starts_with('?') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            match stack.pop() {
                Some(open) if open == name.trim() => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
            continue;
        }
        let name = tag.split([' ', '\n', '/']).next().unwrap_or("");
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(format!("bad tag <{tag}>"));
        }
        if !tag.ends_with('/') {
            stack.push(name);
        }
    }
    match stack.last() {
        None => Ok(()),
        Some(open) => Err(format!("<{open}> never closed")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_drops_what_xml_forbids() {
        assert_eq!(
            escape("<script>alert(1)</script>"),
            "&lt;script&gt;alert(1)&lt;/script&gt;"
        );
        assert_eq!(escape("]]>"), "]]&gt;");
        assert_eq!(escape("a&b \"c\" 'd'"), "a&amp;b &quot;c&quot; &#39;d&#39;");
        assert_eq!(escape("x\0\x01\x1b[31m\r\ty\nz\u{ffff}"), "x[31m\ty\nz");
        assert_eq!(escape("µTorrent ✓"), "µTorrent ✓");
        assert!(well_formed(&format!("<p>{}</p>", escape("<a>&</b>"))).is_ok());
    }

    #[test]
    fn human_units() {
        assert_eq!(human_count(999), "999");
        assert_eq!(human_count(1_234), "1.2k");
        assert_eq!(human_count(12_345), "12k");
        assert_eq!(human_count(2_000_000), "2M");
        assert_eq!(human_count(u64::MAX), "18446744074G");
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3 GiB");
        assert_eq!(human_bytes(u64::MAX), "16 EiB");
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
        assert_eq!(quoted("a\nb\""), r#""a\nb\"""#);
    }

    #[test]
    fn utc_times() {
        assert_eq!(Utc::from_unix(0).long(), "1970-01-01 00:00:00 UTC");
        assert_eq!(Utc::from_unix(951_782_400).date(), "2000-02-29");
        assert_eq!(
            Utc::from_unix(1_714_566_896).rfc3339(),
            "2024-05-01T12:34:56Z"
        );
        assert_eq!(Utc::from_unix(-1).long(), "1969-12-31 23:59:59 UTC");
        let t = 1_714_566_840; // 2024-05-01 12:34
        assert_eq!(time_label(t, 60, true), "12:34");
        assert_eq!(time_label(t, 60, false), "2024-05-01 12:34");
        assert_eq!(time_label(t, 3_600, true), "05-01 12:34");
        assert_eq!(time_label(t, 86_400, true), "05-01");
        assert_eq!(time_label(t, 86_400, false), "2024-05-01");
        assert_eq!(time_label(t, 30 * 86_400, true), "2024-05");
        assert_eq!(time_label(t, 365 * 86_400, false), "2024");
    }

    #[test]
    fn the_checker_catches_broken_markup() {
        assert!(well_formed("<a><b/></a>").is_ok());
        assert!(well_formed("<!DOCTYPE html><a x=\"1\">t &amp; u</a>").is_ok());
        assert!(well_formed("<a><b></a>").is_err());
        assert!(well_formed("<a>").is_err());
        assert!(well_formed("<a>&</a>").is_err());
        assert!(well_formed("<a><script>x</a>").is_err());
    }
}
