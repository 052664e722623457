use proptest::prelude::*;

use super::*;

fn words(ws: &[&str]) -> Term {
    Term {
        words: ws.iter().map(|w| (*w).to_owned()).collect(),
    }
}

fn parse(s: &str) -> SearchQuery {
    SearchQuery::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

#[test]
fn words_phrases_and_exclusions() {
    let q = parse(r#"Ubuntu-24.04 "ubuntu desktop" -beta -"release candidate" -"#);
    assert_eq!(
        q.include,
        [
            words(&["Ubuntu"]),
            words(&["24"]),
            words(&["04"]),
            words(&["ubuntu", "desktop"])
        ]
    );
    assert_eq!(
        q.exclude,
        [words(&["beta"]), words(&["release", "candidate"])]
    );
    assert!(!q.has_fields() && !q.matches_nothing());
    // An unclosed quote runs to the end; an excluded token of several words is a phrase.
    let q = parse(r#"a -x.y "b c"#);
    assert_eq!(q.include, [words(&["a"]), words(&["b", "c"])]);
    assert_eq!(q.exclude, [words(&["x", "y"])]);
    for nothing in ["", "  ", "-", "\"", "\"\"", "- -", "-\"", "*:()"] {
        assert!(parse(nothing).is_empty(), "{nothing:?}");
    }
    // Names with colons: a word that is no field is words.
    let q = parse("Star Wars: Re:Zero");
    assert_eq!(q.include.len(), 4);
    assert!(!q.has_fields());
}

#[test]
fn fields() {
    let q = parse("category:TV size:>1GB size:<=2GiB after:2026-01-01 before:2026-02-01 files:5");
    assert_eq!(q.categories, [Category::Tv]);
    assert_eq!(q.category(), Some(Category::Tv));
    assert_eq!(
        q.size,
        Bounds {
            min: Some(1_000_000_001),
            max: Some(2 << 30)
        }
    );
    assert_eq!(
        q.discovered,
        Bounds {
            min: Some(1_767_225_600),
            max: Some(1_769_904_000 - 1)
        }
    );
    assert_eq!(
        q.files,
        Bounds {
            min: Some(5),
            max: Some(5)
        }
    );
    assert!(q.include.is_empty() && q.has_fields() && !q.matches_nothing());
    assert_eq!(parse("files:>10").files.min, Some(11));
    assert_eq!(parse("files:<3").files.max, Some(2));
    assert_eq!(parse("size:1GB..4GB").size.max, Some(4_000_000_000));
    // Contradictions match nothing.
    let mut q = parse("category:tv");
    q.and_category(Category::Tv);
    assert!(!q.matches_nothing());
    q.and_category(Category::Movie);
    assert!(q.matches_nothing() && q.category().is_none());
    assert!(parse("size:>2GB size:<1GB").matches_nothing());
    assert!(parse("files:<0").matches_nothing());
    assert!(parse("after:2026-02-01 before:2026-02-01").matches_nothing());
    assert!(!parse("after:2026-02-01 before:2026-02-02").matches_nothing());
    assert!(parse("category:tv category:game").matches_nothing());
    assert_eq!(parse("x category:tv").without_categories(), parse("x"));
    assert_eq!(
        parse("files:2..5 size:>=18446744073709551615 before:1970-01-02").range_conditions(),
        [
            ("total_bytes", ">=", i64::MAX),
            ("discovered", "<=", 86_399),
            ("file_count", ">=", 2),
            ("file_count", "<=", 5)
        ]
    );
}

#[test]
fn bad_fields_are_errors_naming_the_token() {
    let err = |s: &str| SearchQuery::parse(s).unwrap_err().to_string();
    assert_eq!(
        err("linux size:abc"),
        r#"size: expects a size like >1GB, <700MB or 1GB..4GB, got "abc""#
    );
    assert_eq!(
        err("category:films"),
        "category: expects one of movie, tv, music, audiobook, ebook, comic, software, game, \
         xxx, other, got \"films\""
    );
    assert_eq!(
        err("after:2026-02-30"),
        r#"after: expects a UTC date like 2026-01-01, got "2026-02-30""#
    );
    assert_eq!(
        err("files:many"),
        r#"files: expects a file count like >10, <3, 5 or 2..5, got "many""#
    );
    assert_eq!(
        err("-size:>1GB"),
        r#"size: expects no `-` before it (a field cannot be excluded), got "-size:>1GB""#
    );
    for bad in [
        "size:",
        "size:1GB",
        "before:",
        "files:>",
        "category:",
        "SIZE:>1XB",
    ] {
        assert!(SearchQuery::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn work_is_bounded() {
    let q = parse(&"w ".repeat(100));
    assert_eq!(q.include.len(), MAX_WORDS);
    let q = parse(&format!("\"{}\" more", "p ".repeat(100)));
    assert_eq!(
        q.include,
        [Term {
            words: vec!["p".into(); MAX_WORDS]
        }]
    );
    let long = "x".repeat(1_000);
    assert_eq!(parse(&long).include[0].words[0].len(), MAX_WORD_CHARS);
    // Fields beyond MAX_FIELDS are not read (not even checked).
    let q = parse(&format!("{} size:bad", "files:>1 ".repeat(MAX_FIELDS)));
    assert_eq!(q.files.min, Some(2));
}

#[test]
fn the_file_that_explains_a_match() {
    let q = parse(r#"ubuntu "server guide" -beta"#);
    let paths = [
        "a/readme.txt",
        "docs/Server-Guide.pdf",
        "ubuntu server guide.iso",
    ];
    assert_eq!(q.matched_file("Ubuntu 24.04", paths), Some(1));
    assert_eq!(q.matched_file("nothing", paths), Some(2));
    assert_eq!(q.matched_file("nothing", ["ubuntu.txt", "x"]), Some(0));
    assert_eq!(q.matched_file("Ubuntu Server Guide", paths), None);
    assert!(q.name_explains("ubuntu: the server guide") && !q.name_explains("ubuntu guide"));
    assert_eq!(q.matched_file("Ubuntu", ["guide server"]), None);
    assert_eq!(parse("category:tv").matched_file("x", ["x"]), None);
}

#[test]
fn displays_its_own_syntax() {
    let q = parse(
        r#"a "b c" -d -"e f" category:tv size:1KB..2KB files:>3 after:2026-01-01 before:2026-02-01"#,
    );
    assert_eq!(
        q.to_string(),
        r#"a "b c" -d -"e f" category:tv size:1000..2000 files:>=4 after:2026-01-01 before:2026-02-01"#
    );
    assert_eq!(parse(&q.to_string()), q);
}

proptest! {
    #[test]
    fn never_panics_and_round_trips(s in r#"[a-z"\- :<>=.0-9TtVvGBMiÉ]{0,60}"#) {
        if let Ok(q) = SearchQuery::parse(&s) {
            prop_assert_eq!(SearchQuery::parse(&q.to_string()), Ok(q.clone()));
            prop_assert!(q.include.iter().chain(&q.exclude).map(|t| t.words.len()).sum::<usize>() <= MAX_WORDS);
        }
    }

    #[test]
    fn fields_round_trip(
        field in prop::sample::select(vec!["size", "files", "after", "before", "category"]),
        op in prop::sample::select(vec![">", "<", ">=", "<=", "", "1..", "0.5.."]),
        n in 0u64..u64::MAX,
        unit in prop::sample::select(vec!["", "kb", "MiB", "GB", "tib"]),
    ) {
        let s = format!("{field}:{op}{n}{unit}");
        if let Ok(q) = SearchQuery::parse(&s) {
            prop_assert_eq!(SearchQuery::parse(&q.to_string()), Ok(q.clone()));
        }
    }

    #[test]
    fn any_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = SearchQuery::parse(&String::from_utf8_lossy(&b));
    }
}

#[test]
fn a_browse_needs_only_its_page() {
    use crate::SearchSort::{Discovered, Relevance, Seeders, Size};
    for q in ["", "category:tv"] {
        assert!(parse(q).is_browse(), "{q}");
        assert_eq!(parse(q).window(Discovered, 10_000, 20, 40), 60);
        assert_eq!(parse(q).window(Relevance, 10_000, 20, 40), 60);
        assert_eq!(parse(q).window(Size, 10_000, 20, 40), 10_000);
        assert_eq!(parse(q).window(Seeders, 10_000, 20, 40), 10_000);
    }
    for q in [
        "a",
        "-a",
        "size:>1GB",
        "files:2",
        "after:2026-01-01 category:tv",
    ] {
        assert!(!parse(q).is_browse(), "{q}");
        assert_eq!(parse(q).window(Discovered, 10_000, 20, 40), 10_000);
        assert_eq!(parse(q).window(Discovered, 10, 20, usize::MAX), usize::MAX);
    }
}
