//! Classification rules as data: file extensions by kind, and name rules, read from TOML
//! (the built-in `default-rules.toml`, and a user's file in the same format before it).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use regex::{Regex, RegexSet, RegexSetBuilder};
use serde::Deserialize;

use crate::category::{Category, Kind};

/// The built-in rules.
pub const DEFAULT_RULES: &str = include_str!("../default-rules.toml");

/// Longest pattern accepted, in bytes, and the compiled size allowed for each: a rules file
/// is user input.
const MAX_PATTERN: usize = 8 * 1024;
const MAX_COMPILED: usize = 4 << 20;

/// A rules file that cannot be used, with where and why in one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RulesError(pub String);

/// One rules file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    kinds: BTreeMap<String, Vec<String>>,
    #[serde(default, rename = "rule")]
    rules: Vec<RuleSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    pattern: String,
    category: String,
    #[serde(default)]
    when: Vec<String>,
    #[serde(default)]
    files: bool,
}

/// A rule ready to use.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub category: Category,
    /// Bit `k` for `Kind::ALL[k]`, bit 15 for "no file of a known kind"; 0: any.
    pub when: u16,
    /// The pattern, for the file paths (`files = true` only).
    pub files: Option<Regex>,
}

/// The bit of "no known kind" in [`Rule::when`].
pub(crate) const WHEN_NONE: u16 = 1 << 15;

/// Compiled rules: what [`crate::Classifier`] runs.
#[derive(Debug, Clone)]
pub struct Rules {
    pub(crate) extensions: HashMap<Box<str>, Kind>,
    pub(crate) rules: Vec<Rule>,
    pub(crate) set: RegexSet,
    /// Whether any rule reads the file paths (`files = true`).
    pub(crate) reads_paths: bool,
}

impl Default for Rules {
    /// The built-in rules.
    fn default() -> Self {
        // The built-in file is tested to parse (see the tests below).
        Rules::from_sources(&[("built-in rules", DEFAULT_RULES)])
            .unwrap_or_else(|e| unreachable!("built-in rules: {e}"))
    }
}

impl Rules {
    /// The rules of the file at `path`, tried before the built-in ones (its extensions
    /// added to theirs). A missing or malformed file is an error naming it.
    pub fn with_file(path: &Path) -> Result<Rules, RulesError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| RulesError(format!("cannot read rules file {}: {e}", path.display())))?;
        let name = format!("rules file {}", path.display());
        Rules::from_sources(&[(&name, &text), ("built-in rules", DEFAULT_RULES)])
    }

    /// Rules from TOML texts, each named for errors: the first one's rules are tried first,
    /// and the first one to list an extension decides its kind.
    pub fn from_sources(sources: &[(&str, &str)]) -> Result<Rules, RulesError> {
        let mut extensions = HashMap::new();
        let mut rules = Vec::new();
        let mut patterns = Vec::new();
        for (name, text) in sources {
            let file: RulesFile =
                toml::from_str(text).map_err(|e| RulesError(one_line(name, &e.to_string())))?;
            for (kind, exts) in &file.kinds {
                let kind = kind_named(kind).ok_or_else(|| {
                    RulesError(format!("{name}: unknown kind `{kind}` in [kinds]"))
                })?;
                for e in exts {
                    let e = e.trim().trim_start_matches('.').to_ascii_lowercase();
                    extensions.entry(e.into_boxed_str()).or_insert(kind);
                }
            }
            for (i, spec) in file.rules.iter().enumerate() {
                let at = || format!("{name}: rule {}", i + 1);
                let category: Category = spec
                    .category
                    .parse()
                    .map_err(|e| RulesError(format!("{}: {e}", at())))?;
                let mut when = 0u16;
                for w in &spec.when {
                    when |= match w.as_str() {
                        "none" => WHEN_NONE,
                        k => {
                            1 << kind_named(k)
                                .ok_or_else(|| {
                                    RulesError(format!("{}: unknown kind `{k}` in when", at()))
                                })?
                                .index()
                        }
                    };
                }
                if spec.pattern.len() > MAX_PATTERN {
                    return Err(RulesError(format!(
                        "{}: pattern longer than {MAX_PATTERN} bytes",
                        at()
                    )));
                }
                let compiled = regex::RegexBuilder::new(&spec.pattern)
                    .size_limit(MAX_COMPILED)
                    .build()
                    .map_err(|e| RulesError(one_line(&at(), &format!("bad pattern: {e}"))))?;
                rules.push(Rule {
                    category,
                    when,
                    files: spec.files.then_some(compiled),
                });
                patterns.push(spec.pattern.clone());
            }
        }
        let set = RegexSetBuilder::new(&patterns)
            .size_limit(MAX_COMPILED * 4)
            .build()
            .map_err(|e| RulesError(one_line("rules", &format!("{e}"))))?;
        let reads_paths = rules.iter().any(|r| r.files.is_some());
        Ok(Rules {
            extensions,
            rules,
            set,
            reads_paths,
        })
    }

    /// The kind of a file named `path`, from its extension (`None`: unknown).
    pub fn kind_of(&self, path: &str) -> Option<Kind> {
        let file = path.rsplit('/').next().unwrap_or(path);
        let (_, ext) = file.rsplit_once('.')?;
        if ext.is_empty() || ext.len() > 10 {
            return None;
        }
        let mut buf = [0u8; 10];
        let lower = &mut buf[..ext.len()];
        lower.copy_from_slice(ext.as_bytes());
        lower.make_ascii_lowercase();
        let lower = std::str::from_utf8(lower).ok()?;
        self.extensions.get(lower).copied()
    }
}

/// A kind by its name in a rules file.
fn kind_named(name: &str) -> Option<Kind> {
    Some(match name {
        "video" => Kind::Video,
        "audio" => Kind::Audio,
        "audiobook" => Kind::Audiobook,
        "ebook" => Kind::Ebook,
        "document" => Kind::Document,
        "image" => Kind::Image,
        "comic" => Kind::Comic,
        "software" => Kind::Software,
        "disc_image" => Kind::DiscImage,
        "archive" => Kind::Archive,
        "extra" => Kind::Extra,
        _ => return None,
    })
}

/// `name: message` with the message's lines joined.
fn one_line(name: &str, message: &str) -> String {
    let joined: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.chars().all(|c| c == '|' || c == '^' || c == ' '))
        .collect();
    format!("{name}: {}", joined.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_rules_parse_and_know_common_extensions() {
        let r = Rules::from_sources(&[("built-in rules", DEFAULT_RULES)]).unwrap();
        assert!(r.rules.len() >= 6);
        assert_eq!(r.kind_of("a/b/Movie.2019.MKV"), Some(Kind::Video));
        assert_eq!(r.kind_of("01 - Song.flac"), Some(Kind::Audio));
        assert_eq!(r.kind_of("book.epub"), Some(Kind::Ebook));
        assert_eq!(r.kind_of("setup.exe"), Some(Kind::Software));
        assert_eq!(r.kind_of("noext"), None);
        assert_eq!(r.kind_of("weird.verylongextension"), None);
        assert_eq!(r.kind_of("dir.mkv/file"), None);
    }

    #[test]
    fn a_users_file_comes_first() {
        let user = r#"
            [kinds]
            video = ["iso"]
            [[rule]]
            pattern = '(?i)\blecture\b'
            category = "other"
            when = ["video"]
        "#;
        let r = Rules::from_sources(&[("mine", user), ("built-in rules", DEFAULT_RULES)]).unwrap();
        assert_eq!(r.kind_of("x.iso"), Some(Kind::Video));
        assert_eq!(r.rules[0].category, Category::Other);
        assert_eq!(r.rules[0].when, 1 << Kind::Video.index());
    }

    #[test]
    fn bad_files_are_one_line_errors_naming_the_file_and_rule() {
        let cases = [
            (
                "[kinds]\nfilms = [\"mkv\"]\n",
                "mine: unknown kind `films` in [kinds]",
            ),
            (
                "[[rule]]\npattern = 'x'\ncategory = \"films\"\n",
                "mine: rule 1: unknown category `films`",
            ),
            (
                "[[rule]]\npattern = 'x'\ncategory = \"tv\"\nwhen = [\"vhs\"]\n",
                "mine: rule 1: unknown kind `vhs` in when",
            ),
            (
                "[[rule]]\npattern = '('\ncategory = \"tv\"\n",
                "mine: rule 1: bad pattern",
            ),
            ("[[rule]]\npattern = 'x'\n", "mine: "),
            ("nonsense = [", "mine: "),
            (
                "[[rule]]\npattern = 'x'\ncategory = \"tv\"\ncolour = 1\n",
                "mine: ",
            ),
        ];
        for (text, want) in cases {
            let e = Rules::from_sources(&[("mine", text)]).unwrap_err().0;
            assert!(e.starts_with(want), "{text:?}: {e}");
            assert!(!e.contains('\n'), "{e:?}");
        }
        let e = Rules::with_file(Path::new("/nonexistent/rules.toml"))
            .unwrap_err()
            .0;
        assert!(
            e.starts_with("cannot read rules file /nonexistent/rules.toml"),
            "{e}"
        );
    }
}
