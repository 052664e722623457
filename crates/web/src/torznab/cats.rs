//! Newznab category codes: what `t=caps` lists, what each stored torrent is filed under
//! (its category, and for films and TV a sub-category by resolution), and what the `cat`
//! parameter of a search selects.

use estudely_store::{Category, Torrent};

/// One Newznab category code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code {
    /// The code: 2000, 2040, ...
    pub id: u32,
    /// Its name in `t=caps`.
    pub name: &'static str,
    /// The code it is a sub-category of.
    pub parent: Option<u32>,
    /// The category of ours it selects.
    pub category: Category,
    /// The resolutions it selects (sub-categories of films and TV), `None`: any.
    pub resolution: Option<Res>,
}

/// The resolution classes of Newznab's film and TV sub-categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Res {
    /// 480p, 576p.
    Sd,
    /// 720p, 1080p.
    Hd,
    /// 2160p.
    Uhd,
}

impl Res {
    /// The class of a parsed resolution (`None` when the name gave none).
    pub fn of(resolution: Option<&str>) -> Option<Res> {
        match resolution? {
            "480p" | "576p" => Some(Res::Sd),
            "720p" | "1080p" => Some(Res::Hd),
            "2160p" => Some(Res::Uhd),
            _ => None,
        }
    }
}

const fn top(id: u32, name: &'static str, category: Category) -> Code {
    Code {
        id,
        name,
        parent: None,
        category,
        resolution: None,
    }
}

const fn sub(id: u32, name: &'static str, parent: u32, category: Category) -> Code {
    Code {
        id,
        name,
        parent: Some(parent),
        category,
        resolution: None,
    }
}

const fn res(id: u32, name: &'static str, parent: u32, category: Category, r: Res) -> Code {
    Code {
        id,
        name,
        parent: Some(parent),
        category,
        resolution: Some(r),
    }
}

/// Every code served, in `t=caps` order. Books (7000) stand for ebooks, and also select
/// comics (7030) when asked for as a whole.
pub const CATEGORIES: [Code; 16] = [
    top(2000, "Movies", Category::Movie),
    res(2030, "Movies/SD", 2000, Category::Movie, Res::Sd),
    res(2040, "Movies/HD", 2000, Category::Movie, Res::Hd),
    res(2045, "Movies/UHD", 2000, Category::Movie, Res::Uhd),
    top(3000, "Audio", Category::Music),
    sub(3030, "Audio/Audiobook", 3000, Category::Audiobook),
    top(4000, "PC", Category::Software),
    sub(4050, "PC/Games", 4000, Category::Game),
    top(5000, "TV", Category::Tv),
    res(5030, "TV/SD", 5000, Category::Tv, Res::Sd),
    res(5040, "TV/HD", 5000, Category::Tv, Res::Hd),
    res(5045, "TV/UHD", 5000, Category::Tv, Res::Uhd),
    top(6000, "XXX", Category::Xxx),
    top(7000, "Books", Category::Ebook),
    sub(7030, "Books/Comics", 7000, Category::Comic),
    top(8000, "Other", Category::Other),
];

/// The codes of a stored torrent: its category's top code, then the sub-category its
/// resolution or kind says (none for an unclassified torrent).
pub fn codes_of(t: &Torrent) -> Vec<u32> {
    let Some(cat) = t.category else {
        return Vec::new();
    };
    let res = Res::of(t.release.as_ref().and_then(|r| r.resolution.as_deref()));
    let mut out = Vec::with_capacity(2);
    for c in CATEGORIES.iter().filter(|c| c.category == cat) {
        let parent = c.parent.and_then(|p| CATEGORIES.iter().find(|x| x.id == p));
        match (parent, c.resolution) {
            // A top code of this category.
            (None, _) => out.push(c.id),
            // A sub-category by resolution: when the torrent has that resolution.
            (Some(_), Some(r)) if Some(r) == res => out.push(c.id),
            (Some(_), Some(_)) => {}
            // A sub-category that is a category of ours (audiobooks, games, comics): its
            // parent, then itself.
            (Some(p), None) => {
                out.push(p.id);
                out.push(c.id);
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// What a `cat` code selects: a category of ours and maybe a resolution class; a top code
/// also its sub-categories of other categories of ours (2000: films; 3000: music and
/// audiobooks; 7000: ebooks and comics). Unknown codes select nothing.
pub fn selection(code: u32) -> Vec<(Category, Option<Res>)> {
    let Some(c) = CATEGORIES.iter().find(|c| c.id == code) else {
        return Vec::new();
    };
    let mut out = vec![(c.category, c.resolution)];
    if c.parent.is_none() {
        for s in CATEGORIES.iter().filter(|s| s.parent == Some(c.id)) {
            if s.category != c.category {
                out.push((s.category, None));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use estudely_store::Release;

    fn t(cat: Option<Category>, resolution: Option<&str>) -> Torrent {
        Torrent {
            info_hash: estudely_krpc::InfoHash([1; 20]),
            info_hash_v2: None,
            name: Vec::new(),
            total_bytes: 0,
            piece_length: 0,
            file_count: 0,
            private: false,
            version: estudely_peer_wire::Version::V1,
            files: Vec::new(),
            discovered: 0,
            source: estudely_store::Source::Sample,
            seeds_estimate: None,
            peers_estimate: None,
            category: cat,
            release: cat.map(|_| Release {
                resolution: resolution.map(str::to_owned),
                ..Release::default()
            }),
        }
    }

    #[test]
    fn codes_by_category_and_resolution() {
        assert_eq!(
            codes_of(&t(Some(Category::Movie), Some("1080p"))),
            [2000, 2040]
        );
        assert_eq!(codes_of(&t(Some(Category::Movie), None)), [2000]);
        assert_eq!(
            codes_of(&t(Some(Category::Tv), Some("2160p"))),
            [5000, 5045]
        );
        assert_eq!(codes_of(&t(Some(Category::Tv), Some("480p"))), [5000, 5030]);
        assert_eq!(codes_of(&t(Some(Category::Audiobook), None)), [3000, 3030]);
        assert_eq!(codes_of(&t(Some(Category::Game), None)), [4000, 4050]);
        assert_eq!(codes_of(&t(Some(Category::Comic), None)), [7000, 7030]);
        assert_eq!(codes_of(&t(Some(Category::Ebook), None)), [7000]);
        assert_eq!(codes_of(&t(Some(Category::Other), None)), [8000]);
        assert!(codes_of(&t(None, None)).is_empty());
        // Every category has a code.
        for c in Category::ALL {
            assert!(!codes_of(&t(Some(c), None)).is_empty(), "{c}");
        }
    }

    #[test]
    fn selections() {
        assert_eq!(selection(2040), [(Category::Movie, Some(Res::Hd))]);
        assert_eq!(
            selection(7000),
            [(Category::Ebook, None), (Category::Comic, None)]
        );
        assert_eq!(
            selection(3000),
            [(Category::Music, None), (Category::Audiobook, None)]
        );
        assert_eq!(selection(5000), [(Category::Tv, None)]);
        assert!(selection(100_123).is_empty());
    }
}
