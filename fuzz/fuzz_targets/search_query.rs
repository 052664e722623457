//! The search query parser on hostile text: never panics, bounds its words, and every
//! query it reads prints back (Display) to text that parses to the same query. Input: the
//! query, then one file path per line, for the matched-file check (its answer must index a
//! path that exists).
#![no_main]

use estudely_store::search_query::MAX_WORDS;
use estudely_store::SearchQuery;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let query = lines.next().unwrap_or("");
    let paths: Vec<&str> = lines.take(1_000).collect();
    let Ok(q) = SearchQuery::parse(query) else {
        return;
    };
    let words: usize = q
        .include
        .iter()
        .chain(&q.exclude)
        .map(|t| t.words.len())
        .sum();
    assert!(words <= MAX_WORDS);
    let again = SearchQuery::parse(&q.to_string());
    assert_eq!(again.as_ref(), Ok(&q), "{query:?} printed as {}", q);
    if let Some(i) = q.matched_file(paths.first().copied().unwrap_or(""), paths.iter().copied()) {
        assert!(i < paths.len());
    }
    let _ = (q.matches_nothing(), q.has_fields(), q.is_empty());
});
