//! The search query language, parsed by a pure, total function: [`SearchQuery::parse`].
//!
//! - `ubuntu desktop`: torrents with every word (in the name or a file path, any case);
//!   punctuation separates words (`ubuntu-22.04` is `ubuntu 22 04`).
//! - `"ubuntu desktop"`: the words next to each other, in this order; an unclosed quote
//!   runs to the end.
//! - `-word`, `-"a phrase"`: torrents without it (a lone `-` is nothing).
//! - `category:tv`: one of `movie tv music audiobook ebook comic software game xxx other`.
//! - `size:>1GB`, `size:<700MB`, `size:1GB..4GB` (also `>=`, `<=`): units `B KB MB GB TB`
//!   (powers of 1000) and `KiB MiB GiB TiB` (of 1024), any case, fractions allowed.
//! - `after:2026-01-01` (discovered that UTC day or later), `before:2026-02-01` (discovered
//!   before that day).
//! - `files:>10`, `files:<3`, `files:5`, `files:2..5`.
//!
//! A field with a value it cannot read is an error naming the token (`size: expects a size
//! like >1GB, <700MB or 1GB..4GB, got "abc"`), as is an excluded field (`-size:>1GB`). Any
//! other `word:` is plain words, since names hold colons (`Star Wars: A New Hope`). Fields
//! repeat to narrow (`size:>1GB size:<2GB`); two different categories match nothing.
//!
//! The work is bounded: at most [`MAX_WORDS`] words are searched (the rest are dropped),
//! each cut to [`MAX_WORD_CHARS`] characters, and at most [`MAX_FIELDS`] fields read.

mod value;

use std::fmt;

pub use value::{civil_from_days, date, date_of, days_from_civil, days_in, Bounds};

use crate::Category;

/// Most words searched per query (phrases count each of their words); the rest are dropped.
pub const MAX_WORDS: usize = 16;

/// Longest word searched, in characters; longer ones are cut.
pub const MAX_WORD_CHARS: usize = 64;

/// Most fields read per query; the rest are dropped.
pub const MAX_FIELDS: usize = 16;

/// One word, or a phrase of words that must follow each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// Runs of letters and digits, as typed; never empty, none empty.
    pub words: Vec<String>,
}

/// A parsed query: what to match and the filters on the matches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchQuery {
    /// Words and phrases every match has.
    pub include: Vec<Term>,
    /// Words and phrases no match has.
    pub exclude: Vec<Term>,
    /// Categories asked for: none for all, one, or several (then nothing matches).
    pub categories: Vec<Category>,
    /// `total_bytes`.
    pub size: Bounds<u64>,
    /// `discovered`, unix seconds.
    pub discovered: Bounds<i64>,
    /// `file_count`.
    pub files: Bounds<u64>,
}

/// A query that cannot be read: which token, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    /// The field (`size`, `category`, ...).
    pub field: &'static str,
    /// What it takes.
    pub expected: &'static str,
    /// The token as typed (value only, or the whole token for an excluded field).
    pub got: String,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: expects {}, got {:?}",
            self.field, self.expected, self.got
        )
    }
}

impl std::error::Error for QueryError {}

/// The fields: name, and what its value must be (for errors).
const FIELDS: [(&str, &str); 5] = [
    (
        "category",
        "one of movie, tv, music, audiobook, ebook, comic, software, game, xxx, other",
    ),
    ("size", "a size like >1GB, <700MB or 1GB..4GB"),
    ("after", "a UTC date like 2026-01-01"),
    ("before", "a UTC date like 2026-01-01"),
    ("files", "a file count like >10, <3, 5 or 2..5"),
];

impl SearchQuery {
    /// Read `text` (see the module docs). Never panics; any input gives a query or one
    /// error.
    pub fn parse(text: &str) -> Result<SearchQuery, QueryError> {
        let mut q = SearchQuery::default();
        let (mut words, mut fields) = (0, 0);
        let mut rest = text;
        loop {
            rest = rest.trim_start();
            if rest.is_empty() {
                break;
            }
            let negated = rest.starts_with('-');
            if negated {
                rest = &rest[1..];
            }
            let (token, quoted, after) = if let Some(inner) = rest.strip_prefix('"') {
                let end = inner.find('"').unwrap_or(inner.len());
                (&inner[..end], true, inner.get(end + 1..).unwrap_or(""))
            } else {
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                (&rest[..end], false, &rest[end..])
            };
            rest = after;
            if let Some((name, value)) = field_of(token).filter(|_| !quoted) {
                if negated {
                    return Err(QueryError {
                        field: name,
                        expected: "no `-` before it (a field cannot be excluded)",
                        got: format!("-{token}"),
                    });
                }
                fields += 1;
                if fields <= MAX_FIELDS {
                    q.add_field(name, value)?;
                }
                continue;
            }
            let mut split: Vec<String> = split_words(token).map(cut).collect();
            split.truncate(MAX_WORDS - words);
            words += split.len();
            if split.is_empty() {
                continue;
            }
            match (negated, quoted) {
                (true, _) => q.exclude.push(Term { words: split }),
                (false, true) => q.include.push(Term { words: split }),
                (false, false) => q
                    .include
                    .extend(split.into_iter().map(|w| Term { words: vec![w] })),
            }
        }
        Ok(q)
    }

    /// Narrow by one field's value.
    fn add_field(&mut self, name: &'static str, value: &str) -> Result<(), QueryError> {
        let expected = FIELDS.iter().find(|f| f.0 == name).map_or("", |f| f.1);
        let bad = || QueryError {
            field: name,
            expected,
            got: value.to_owned(),
        };
        match name {
            "category" => {
                let c: Category = value.parse().map_err(|_| bad())?;
                self.and_category(c);
            }
            "size" => {
                self.size = self
                    .size
                    .and(value::bounds(value, false, value::size).ok_or_else(bad)?)
            }
            "files" => {
                self.files = self
                    .files
                    .and(value::bounds(value, true, value::count).ok_or_else(bad)?)
            }
            "after" => {
                let day = value::date(value).ok_or_else(bad)?;
                self.discovered = self.discovered.and(Bounds {
                    min: Some(day),
                    max: None,
                });
            }
            _ => {
                let day = value::date(value).ok_or_else(bad)?;
                self.discovered = self.discovered.and(Bounds {
                    min: None,
                    max: Some(day - 1),
                });
            }
        }
        Ok(())
    }

    /// Ask for `category` too (a front end's own category parameter): with another
    /// category already asked for, nothing matches.
    pub fn and_category(&mut self, category: Category) {
        if !self.categories.contains(&category) {
            self.categories.push(category);
        }
    }

    /// The one category asked for, if exactly one.
    pub fn category(&self) -> Option<Category> {
        match self.categories[..] {
            [c] => Some(c),
            _ => None,
        }
    }

    /// Can nothing match (two categories, or an empty range)?
    pub fn matches_nothing(&self) -> bool {
        self.categories.len() > 1
            || self.size.is_empty()
            || self.files.is_empty()
            || self.discovered.is_empty()
    }

    /// Is there nothing to look for: an empty query, or one that matches nothing?
    pub fn finds_nothing(&self) -> bool {
        self.is_empty() || self.matches_nothing()
    }

    /// Does it ask for nothing at all (no words, no exclusions, no fields)?
    pub fn is_empty(&self) -> bool {
        *self == SearchQuery::default()
    }

    /// Is it a browse, newest first: no words, no exclusions, no field but a category?
    /// Its candidates in discovery order are its hits, so a page needs no more of them.
    pub fn is_browse(&self) -> bool {
        self.include.is_empty()
            && self.exclude.is_empty()
            && self.size.is_open()
            && self.discovered.is_open()
            && self.files.is_open()
    }

    /// The candidates a search in `sort` order needs for a page of `limit` from `offset`:
    /// `at_least` (the backend's bounded set), or just the page for a browse newest first.
    pub fn window(
        &self,
        sort: crate::SearchSort,
        at_least: usize,
        limit: usize,
        offset: usize,
    ) -> usize {
        let page = offset.saturating_add(limit);
        let newest_first = matches!(
            sort,
            crate::SearchSort::Relevance | crate::SearchSort::Discovered
        );
        if self.is_browse() && newest_first {
            page
        } else {
            at_least.max(page)
        }
    }

    /// Does it have filters besides words (a category, a size, dates, a file count)?
    pub fn has_fields(&self) -> bool {
        !self.categories.is_empty()
            || !self.size.is_open()
            || !self.discovered.is_open()
            || !self.files.is_open()
    }

    /// The conditions of the size, date and file-count fields: `(column, ">=" or "<=",
    /// value)` on the `torrents` columns `total_bytes`, `discovered`, `file_count`, values
    /// saturated to SQL integers. Categories are not among them.
    pub fn range_conditions(&self) -> Vec<(&'static str, &'static str, i64)> {
        let wide = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let ranges = [
            (
                "total_bytes",
                self.size.min.map(wide),
                self.size.max.map(wide),
            ),
            ("discovered", self.discovered.min, self.discovered.max),
            (
                "file_count",
                self.files.min.map(wide),
                self.files.max.map(wide),
            ),
        ];
        let mut out = Vec::new();
        for (column, min, max) in ranges {
            out.extend(min.map(|v| (column, ">=", v)));
            out.extend(max.map(|v| (column, "<=", v)));
        }
        out
    }

    /// The same query without its categories (for counting hits per category).
    pub fn without_categories(&self) -> SearchQuery {
        SearchQuery {
            categories: Vec::new(),
            ..self.clone()
        }
    }

    /// Does `name` alone hold every included term (words compared in lower case, a
    /// phrase's words in a row)? Then no file needs showing for a match.
    pub fn name_explains(&self, name: &str) -> bool {
        let name = lower_words(name);
        self.include_lower().all(|t| holds(&name, &t))
    }

    /// Which of `paths` explains a match when `name` alone does not: the index of the
    /// first path that holds every included term the name lacks, else of the first holding
    /// one of them. `None` when the name holds every term, or no path holds any.
    pub fn matched_file<'a>(
        &self,
        name: &str,
        paths: impl IntoIterator<Item = &'a str>,
    ) -> Option<usize> {
        let name = lower_words(name);
        let missing: Vec<Vec<String>> = self.include_lower().filter(|t| !holds(&name, t)).collect();
        if missing.is_empty() {
            return None;
        }
        let mut some = None;
        for (i, path) in paths.into_iter().enumerate() {
            let words = lower_words(path);
            let n = missing.iter().filter(|t| holds(&words, t)).count();
            if n == missing.len() {
                return Some(i);
            }
            if n > 0 && some.is_none() {
                some = Some(i);
            }
        }
        some
    }

    /// The included terms' words in lower case.
    fn include_lower(&self) -> impl Iterator<Item = Vec<String>> + '_ {
        self.include
            .iter()
            .map(|t| t.words.iter().map(|w| w.to_lowercase()).collect())
    }
}

/// `name:value` when `name` is a field (any case).
fn field_of(token: &str) -> Option<(&'static str, &str)> {
    let (name, value) = token.split_once(':')?;
    let (field, _) = FIELDS.iter().find(|f| f.0.eq_ignore_ascii_case(name))?;
    Some((field, value))
}

/// The runs of letters and digits of `text`.
fn split_words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
}

/// `w` cut to [`MAX_WORD_CHARS`] characters.
fn cut(w: &str) -> String {
    w.chars().take(MAX_WORD_CHARS).collect()
}

/// The words of `text` in lower case.
fn lower_words(text: &str) -> Vec<String> {
    split_words(text).map(|w| cut(&w.to_lowercase())).collect()
}

/// Do `words` hold `term`'s words in a row?
fn holds(words: &[String], term: &[String]) -> bool {
    !term.is_empty() && words.windows(term.len()).any(|w| w == term)
}

impl fmt::Display for Term {
    /// A word as is, a phrase in quotes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.words[..] {
            [w] => f.write_str(w),
            ws => write!(f, "\"{}\"", ws.join(" ")),
        }
    }
}

impl fmt::Display for SearchQuery {
    /// The query in its own syntax: parsing it again gives the same query.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = self.include.iter().map(Term::to_string).collect();
        parts.extend(self.exclude.iter().map(|t| format!("-{t}")));
        parts.extend(self.categories.iter().map(|c| format!("category:{c}")));
        let range = |name: &str, b: Bounds<u64>| match (b.min, b.max) {
            (Some(a), Some(z)) if a == z && name == "files" => Some(format!("{name}:{a}")),
            (Some(a), Some(z)) => Some(format!("{name}:{a}..{z}")),
            (Some(a), None) => Some(format!("{name}:>={a}")),
            (None, Some(z)) => Some(format!("{name}:<={z}")),
            (None, None) => None,
        };
        parts.extend(range("size", self.size));
        parts.extend(range("files", self.files));
        if let Some(t) = self.discovered.min {
            parts.push(format!("after:{}", date_of(t)));
        }
        if let Some(t) = self.discovered.max {
            parts.push(format!("before:{}", date_of(t.saturating_add(1))));
        }
        f.write_str(&parts.join(" "))
    }
}

#[cfg(test)]
mod tests;
