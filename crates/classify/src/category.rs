//! The content types a torrent is filed under, and the kinds of file they are decided from.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a torrent holds, as `export`, the API and Torznab name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// A film.
    Movie,
    /// Episodes or seasons of a series.
    Tv,
    /// Music: albums, singles, discographies.
    Music,
    /// A book read aloud.
    Audiobook,
    /// A book to read: EPUB, MOBI, PDF, ...
    Ebook,
    /// Comics and manga (CBZ, CBR, ...).
    Comic,
    /// Programs, operating systems, disc images of them.
    Software,
    /// Games, for computers or consoles.
    Game,
    /// Adult content.
    Xxx,
    /// Anything else, or too little to tell.
    Other,
}

impl Category {
    /// Every category, in the order the UI lists them.
    pub const ALL: [Category; 10] = [
        Category::Movie,
        Category::Tv,
        Category::Music,
        Category::Audiobook,
        Category::Ebook,
        Category::Comic,
        Category::Software,
        Category::Game,
        Category::Xxx,
        Category::Other,
    ];

    /// The lower-case name stored and exported: `movie`, `tv`, ..., `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Movie => "movie",
            Category::Tv => "tv",
            Category::Music => "music",
            Category::Audiobook => "audiobook",
            Category::Ebook => "ebook",
            Category::Comic => "comic",
            Category::Software => "software",
            Category::Game => "game",
            Category::Xxx => "xxx",
            Category::Other => "other",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Not one of the category names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown category `{0}`: expected one of movie, tv, music, audiobook, ebook, comic, software, game, xxx, other")]
pub struct UnknownCategory(pub String);

impl FromStr for Category {
    type Err = UnknownCategory;

    /// A category by its name, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Category::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownCategory(s.to_owned()))
    }
}

/// What one file is, from its extension. Only the kinds that decide a category weigh; the
/// others (subtitles, artwork, text, checksums) are along for the ride.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Films, episodes, clips.
    Video,
    /// Songs, albums.
    Audio,
    /// Audiobook containers (`m4b`).
    Audiobook,
    /// Books.
    Ebook,
    /// Documents that may be books or comics (PDF, DjVu).
    Document,
    /// Comic archives.
    Comic,
    /// Installers and packages.
    Software,
    /// CD/DVD/BD images (software or games).
    DiscImage,
    /// Pictures: photos, scans.
    Image,
    /// Compressed archives and their volumes: what is inside is unknown.
    Archive,
    /// Subtitles, text, checksums, playlists: they weigh nothing.
    Extra,
}

impl Kind {
    /// Every kind, in a fixed order.
    pub const ALL: [Kind; 11] = [
        Kind::Video,
        Kind::Audio,
        Kind::Audiobook,
        Kind::Ebook,
        Kind::Document,
        Kind::Comic,
        Kind::Software,
        Kind::DiscImage,
        Kind::Image,
        Kind::Archive,
        Kind::Extra,
    ];

    /// Its position in [`Kind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_in_any_case() {
        for c in Category::ALL {
            assert_eq!(c.as_str().parse::<Category>(), Ok(c));
            assert_eq!(c.as_str().to_uppercase().parse::<Category>(), Ok(c));
            assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{c}\""));
        }
        let e = "films".parse::<Category>().unwrap_err();
        assert!(e.to_string().starts_with("unknown category `films`"), "{e}");
    }

    #[test]
    fn kinds_index_in_order() {
        for (i, k) in Kind::ALL.into_iter().enumerate() {
            assert_eq!(k.index(), i);
        }
    }
}
