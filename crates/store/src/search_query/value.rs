//! The values of query fields: sizes with units, counts, UTC dates, and the bounds they
//! set. Pure functions; every malformed value is `None` (the parser names the token).

/// An inclusive range on one column; `None` ends are open. `min > max` matches nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bounds<T> {
    /// Smallest value that matches.
    pub min: Option<T>,
    /// Largest value that matches.
    pub max: Option<T>,
}

impl<T: Copy + Ord> Bounds<T> {
    /// Both ends open: everything matches.
    pub fn is_open(&self) -> bool {
        self.min.is_none() && self.max.is_none()
    }

    /// Does nothing lie within (`min > max`)?
    pub fn is_empty(&self) -> bool {
        matches!((self.min, self.max), (Some(a), Some(b)) if a > b)
    }

    /// The values both `self` and `other` let through.
    pub fn and(self, other: Bounds<T>) -> Bounds<T> {
        let pick = |a: Option<T>, b: Option<T>, f: fn(T, T) -> T| match (a, b) {
            (Some(a), Some(b)) => Some(f(a, b)),
            (a, b) => a.or(b),
        };
        Bounds {
            min: pick(self.min, other.min, T::max),
            max: pick(self.max, other.max, T::min),
        }
    }

    /// Does `v` lie within?
    pub fn contains(&self, v: T) -> bool {
        self.min.is_none_or(|m| v >= m) && self.max.is_none_or(|m| v <= m)
    }
}

/// `>N`, `>=N`, `<N`, `<=N`, `N..M` (inclusive) or, when `exact` allows, `N`; each number
/// read by `num`. `None` when malformed.
pub fn bounds(value: &str, exact: bool, num: fn(&str) -> Option<u64>) -> Option<Bounds<u64>> {
    let b = |min, max| Some(Bounds { min, max });
    if let Some(rest) = value.strip_prefix(">=") {
        return b(Some(num(rest)?), None);
    }
    if let Some(rest) = value.strip_prefix("<=") {
        return b(None, Some(num(rest)?));
    }
    if let Some(rest) = value.strip_prefix('>') {
        return b(Some(num(rest)?.checked_add(1)?), None);
    }
    if let Some(rest) = value.strip_prefix('<') {
        // `<0`: nothing; kept as the empty range 1..0 so that it prints back.
        return match num(rest)?.checked_sub(1) {
            Some(max) => b(None, Some(max)),
            None => b(Some(1), Some(0)),
        };
    }
    if let Some((lo, hi)) = value.split_once("..") {
        return b(Some(num(lo)?), Some(num(hi)?));
    }
    if exact {
        let n = num(value)?;
        return b(Some(n), Some(n));
    }
    None
}

/// A count: decimal digits only, at most `u64::MAX`.
pub fn count(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A size in bytes: a number (an optional fraction of up to 9 digits) and a unit, any case:
/// none or `B`; `KB`, `MB`, `GB`, `TB` (powers of 1000); `KiB`, `MiB`, `GiB`, `TiB` (of
/// 1024). `1.5GB` = 1,500,000,000. `None` when malformed or beyond `u64`.
pub fn size(s: &str) -> Option<u64> {
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let unit: u128 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return None,
    };
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    let whole = u128::from(count(whole)?);
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let scale = 10u128.pow(u32::try_from(frac.len()).ok()?);
    let frac: u128 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    let bytes = whole * unit + frac * unit / scale;
    u64::try_from(bytes).ok()
}

/// Days in month `m` of year `y` (proleptic Gregorian).
pub fn days_in(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01 (the inverse of [`days_from_civil`]).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `YYYY-MM-DD` (a real date) → the unix second its UTC day starts.
pub fn date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (count(&s[..4])?, count(&s[5..7])?, count(&s[8..])?);
    let (y, m, d) = (
        i64::try_from(y).ok()?,
        i64::try_from(m).ok()?,
        i64::try_from(d).ok()?,
    );
    if !(1..=12).contains(&m) || d < 1 || d > days_in(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d) * 86_400)
}

/// The `YYYY-MM-DD` of the UTC day holding unix second `t`.
pub fn date_of(t: i64) -> String {
    let (y, m, d) = civil_from_days(t.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(size("1GB"), Some(1_000_000_000));
        assert_eq!(size("1gib"), Some(1 << 30));
        assert_eq!(size("700MB"), Some(700_000_000));
        assert_eq!(size("1.5GB"), Some(1_500_000_000));
        assert_eq!(size("0.5KiB"), Some(512));
        assert_eq!(size("12"), Some(12));
        assert_eq!(size("12b"), Some(12));
        assert_eq!(size("3TiB"), Some(3 << 40));
        for bad in [
            "",
            "GB",
            "abc",
            "1.2.3GB",
            "1PB",
            "-1GB",
            "1 GB",
            ".",
            "1.0000000001GB",
        ] {
            assert_eq!(size(bad), None, "{bad:?}");
        }
        assert_eq!(size("999999999999999999TB"), None);
    }

    #[test]
    fn ranges() {
        let b = |min, max| Some(Bounds { min, max });
        assert_eq!(bounds(">10", true, count), b(Some(11), None));
        assert_eq!(bounds(">=10", true, count), b(Some(10), None));
        assert_eq!(bounds("<3", true, count), b(None, Some(2)));
        assert_eq!(bounds("<0", true, count), b(Some(1), Some(0)));
        assert_eq!(bounds("<=3", true, count), b(None, Some(3)));
        assert_eq!(bounds("5", true, count), b(Some(5), Some(5)));
        assert_eq!(bounds("5", false, count), None);
        assert_eq!(bounds("2..5", false, count), b(Some(2), Some(5)));
        assert_eq!(bounds("1KB..2KB", false, size), b(Some(1000), Some(2000)));
        for bad in ["", ">", "<", "..", "1..", "x", ">x", "5..x"] {
            assert_eq!(bounds(bad, true, count), None, "{bad:?}");
        }
        let r = Bounds {
            min: Some(2),
            max: Some(9),
        };
        let narrowed = r.and(Bounds {
            min: Some(4),
            max: None,
        });
        assert_eq!(
            narrowed,
            Bounds {
                min: Some(4),
                max: Some(9)
            }
        );
        assert!(narrowed.contains(4) && narrowed.contains(9) && !narrowed.contains(3));
        assert!(Bounds::<u64>::default().is_open());
    }

    #[test]
    fn dates() {
        assert_eq!(date("1970-01-01"), Some(0));
        assert_eq!(date("2026-01-01"), Some(1_767_225_600));
        assert_eq!(date("2024-02-29"), Some(1_709_164_800));
        for bad in [
            "2023-02-29",
            "2026-13-01",
            "2026-00-10",
            "2026-1-01",
            "26-01-01",
            "x",
        ] {
            assert_eq!(date(bad), None, "{bad:?}");
        }
        for t in [0, 1_767_225_600, 1_709_164_800, -86_400, 253_402_214_400] {
            assert_eq!(date(&date_of(t)), Some(t), "{t}");
        }
        assert_eq!(date_of(1_767_225_600 + 86_399), "2026-01-01");
    }
}
