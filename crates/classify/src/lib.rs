//! What a torrent holds, from its name and files: a [`Category`] (movie, tv, music,
//! audiobook, ebook, comic, software, game, xxx, other) and the [`Release`] fields its name
//! carries (title, year, season, episode, resolution, video codec, group).
//!
//! No I/O and no clock: a [`Classifier`] is built once from [`Rules`] (data: the built-in
//! `default-rules.toml`, plus a user's file in the same format) and then classifies from
//! borrowed strings, with one pass of a compiled regex set over the name.
//!
//! How a category is decided:
//! 1. The bytes of the files are summed by [`Kind`] (from extensions; subtitles, artwork and
//!    text weigh nothing). The kind with the most bytes is the *dominant* one.
//! 2. The name rules are tried in order; the first that matches, and whose `when` admits
//!    the dominant kind, decides (adult words decide whatever the files; game tags only on
//!    software, disc images and archives; "unabridged" only on audio; ...).
//! 3. Otherwise the dominant kind decides: video is `tv` when the name or its video files
//!    mark a season or an episode, else `movie`; audio `music`; PDFs `ebook`; disc images
//!    `software`; pictures `other`;
//!    archives, or no known file, are read from the name (an episode marker: `tv`; a
//!    resolution or a video codec: `movie`; else `other`).
//!
//! ```
//! use estudely_classify::{Category, Classifier};
//!
//! let c = Classifier::default();
//! let files = [
//!     ("Show.S01E01.1080p.WEB.x264-GRP.mkv", 1_500_000_000),
//!     ("Show.S01E01.1080p.WEB.x264-GRP.srt", 40_000),
//! ];
//! let got = c.classify("Show.S01E01.1080p.WEB.x264-GRP", files);
//! assert_eq!(got.category, Category::Tv);
//! assert_eq!((got.release.season, got.release.episode), (Some(1), Some(1)));
//! assert_eq!(got.release.resolution.as_deref(), Some("1080p"));
//! ```
#![deny(missing_docs)]

mod category;
pub mod release;
mod rules;

pub use category::{Category, Kind, UnknownCategory};
pub use release::Release;
pub use rules::{Rules, RulesError, DEFAULT_RULES};

use serde::{Deserialize, Serialize};

use rules::WHEN_NONE;

/// A torrent's category and release fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Classification {
    /// What it holds.
    pub category: Category,
    /// What its name says.
    pub release: Release,
}

/// Video files whose names are read for an episode marker when the torrent's name has none.
const EPISODE_PROBES: usize = 4;

/// Classifies torrents with a set of [`Rules`]. Cheap to share (`&self` only).
#[derive(Debug, Clone, Default)]
pub struct Classifier {
    rules: Rules,
}

impl Classifier {
    /// A classifier with these rules.
    pub fn new(rules: Rules) -> Self {
        Classifier { rules }
    }

    /// Its rules.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Classify a torrent from its name and its files (`path` with `/` between components,
    /// `length` in bytes). A single-file torrent's one file is usually named as the torrent.
    pub fn classify<'a, I>(&self, name: &str, files: I) -> Classification
    where
        I: IntoIterator<Item = (&'a str, u64)>,
    {
        let mut bytes = [0u64; Kind::ALL.len()];
        let mut video_names: [&str; EPISODE_PROBES] = [""; EPISODE_PROBES];
        let mut videos = 0;
        let mut paths: Vec<&'a str> = Vec::new();
        for (path, length) in files {
            if let Some(kind) = self.rules.kind_of(path) {
                let b = &mut bytes[kind.index()];
                *b = b.saturating_add(length.max(1));
                if kind == Kind::Video && videos < EPISODE_PROBES {
                    video_names[videos] = path.rsplit('/').next().unwrap_or(path);
                    videos += 1;
                }
            }
            if self.rules.reads_paths && paths.len() < 64 {
                paths.push(path);
            }
        }
        let dominant = dominant(&bytes);
        let release = release::parse(name);
        let when_bit = dominant.map_or(WHEN_NONE, |k| 1 << k.index());
        let matched = self.rules.set.matches(name);
        let by_rule = self.rules.rules.iter().enumerate().find_map(|(i, r)| {
            if r.when != 0 && r.when & when_bit == 0 {
                return None;
            }
            let hit = matched.matched(i)
                || r.files
                    .as_ref()
                    .is_some_and(|re| paths.iter().any(|p| re.is_match(p)));
            hit.then_some(r.category)
        });
        let category = by_rule.unwrap_or_else(|| match dominant {
            Some(Kind::Video) => {
                let episodic = release.is_episodic()
                    || video_names[..videos]
                        .iter()
                        .any(|f| release::parse(f).is_episodic());
                if episodic {
                    Category::Tv
                } else {
                    Category::Movie
                }
            }
            Some(Kind::Audio) => Category::Music,
            Some(Kind::Audiobook) => Category::Audiobook,
            Some(Kind::Ebook | Kind::Document) => Category::Ebook,
            Some(Kind::Image) => Category::Other,
            Some(Kind::Comic) => Category::Comic,
            Some(Kind::Software | Kind::DiscImage) => Category::Software,
            Some(Kind::Archive | Kind::Extra) | None => {
                if release.is_episodic() && release.is_video() {
                    Category::Tv
                } else if release.is_video() {
                    Category::Movie
                } else {
                    Category::Other
                }
            }
        });
        Classification { category, release }
    }
}

/// The kind with the most bytes, extras aside; `None` when no file is of a known kind.
fn dominant(bytes: &[u64; Kind::ALL.len()]) -> Option<Kind> {
    Kind::ALL
        .into_iter()
        .filter(|k| *k != Kind::Extra)
        .filter(|k| bytes[k.index()] > 0)
        .max_by_key(|k| (bytes[k.index()], std::cmp::Reverse(k.index())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(name: &str, files: &[(&str, u64)]) -> Category {
        Classifier::default()
            .classify(name, files.iter().copied())
            .category
    }

    #[test]
    fn by_dominant_kind() {
        assert_eq!(
            one(
                "Inception.2010.1080p.BluRay.x264-GRP",
                &[
                    ("Inception.2010.1080p.BluRay.x264-GRP.mkv", 8 << 30),
                    ("Inception.nfo", 3_000)
                ]
            ),
            Category::Movie
        );
        assert_eq!(
            one(
                "Artist - Album (2001)",
                &[
                    ("01 - a.flac", 30 << 20),
                    ("02 - b.flac", 30 << 20),
                    ("cover.jpg", 900_000)
                ]
            ),
            Category::Music
        );
        assert_eq!(one("A Book", &[("A Book.epub", 2 << 20)]), Category::Ebook);
        assert_eq!(
            one("A Comic 001", &[("A Comic 001.cbz", 50 << 20)]),
            Category::Comic
        );
        assert_eq!(
            one(
                "Tool 2.0",
                &[("tool-setup.exe", 80 << 20), ("readme.txt", 2_000)]
            ),
            Category::Software
        );
        assert_eq!(
            one(
                "ubuntu-24.04-desktop-amd64.iso",
                &[("ubuntu-24.04-desktop-amd64.iso", 5 << 30)]
            ),
            Category::Software
        );
        assert_eq!(
            one("A Story", &[("A Story.m4b", 300 << 20)]),
            Category::Audiobook
        );
        assert_eq!(one("stuff", &[("data.csv", 10)]), Category::Other);
        assert_eq!(one("nothing", &[]), Category::Other);
    }

    #[test]
    fn episodes_in_the_name_or_in_the_files() {
        assert_eq!(
            one(
                "Show.S02E03.720p.HDTV.x264-GRP",
                &[("Show.S02E03.720p.HDTV.x264-GRP.mkv", 700 << 20)]
            ),
            Category::Tv
        );
        assert_eq!(
            one(
                "Show - The Complete Series",
                &[
                    ("Season 1/Show.S01E01.mkv", 1 << 30),
                    ("Season 1/Show.S01E02.mkv", 1 << 30)
                ]
            ),
            Category::Tv
        );
        assert_eq!(
            one(
                "Show.S01.1080p.WEB.x264-GRP",
                &[
                    ("Show.S01.1080p.WEB.x264-GRP.rar", 4 << 30),
                    ("Show.S01.1080p.WEB.x264-GRP.r00", 4 << 30)
                ]
            ),
            Category::Tv
        );
    }

    #[test]
    fn rules_decide_before_files() {
        assert_eq!(
            one("Some.XXX.Clip.1080p", &[("clip.mp4", 1 << 30)]),
            Category::Xxx
        );
        assert_eq!(
            one("Big.Game-CODEX", &[("codex-big.game.iso", 40 << 30)]),
            Category::Game
        );
        assert_eq!(
            one(
                "Big Game [FitGirl Repack]",
                &[("setup.exe", 5 << 20), ("data.bin", 20 << 30)]
            ),
            Category::Game
        );
        assert_eq!(
            one(
                "Author - Title (Unabridged)",
                &[("Title 01.mp3", 60 << 20), ("Title 02.mp3", 60 << 20)]
            ),
            Category::Audiobook
        );
        assert_eq!(
            one(
                "Author - Title",
                &[("Chapter 01.mp3", 60 << 20), ("Chapter 02.mp3", 60 << 20)]
            ),
            Category::Audiobook
        );
        // Game tags do not turn a film into a game, nor "switch" a song.
        assert_eq!(
            one(
                "Switch.2011.1080p.BluRay.x264-GRP",
                &[("Switch.mkv", 8 << 30)]
            ),
            Category::Movie
        );
        assert_eq!(
            one("Artist - Switch", &[("Switch.mp3", 8 << 20)]),
            Category::Music
        );
    }
}
