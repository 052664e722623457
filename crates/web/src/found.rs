//! One search as the pages and the API run it: the query read in the search language, the
//! hits, the file that explains each shown hit, and the hits per category (beside the hits,
//! on a second connection).

use std::sync::Arc;

use estudely_store::{Category, CategoryCounts, SearchQuery, SearchSort, StoredTorrent};

use super::{AppState, DbError};

/// The query `text` (see [`SearchQuery`]) among the torrents of `category`, when given: a
/// query that cannot be read is the parser's one-line message. A `category:` field naming
/// another category than the parameter finds nothing.
pub fn parse_search(text: &str, category: Option<Category>) -> Result<SearchQuery, String> {
    let mut q = SearchQuery::parse(text).map_err(|e| e.to_string())?;
    if let Some(c) = category {
        q.and_category(c);
    }
    Ok(q)
}

/// What one search found.
#[derive(Debug, Default)]
pub struct Found {
    /// The hits, at most the `limit` asked for.
    pub hits: Vec<StoredTorrent>,
    /// For each of the first `shown` hits, the file path that explains the match.
    pub matched: Vec<Option<String>>,
    /// Hits per category, when asked for.
    pub counts: Option<CategoryCounts>,
}

impl Found {
    /// The matched file of hit `i`, if any.
    pub fn matched_file(&self, i: usize) -> Option<String> {
        self.matched.get(i).cloned().flatten()
    }
}

/// Run `q` (nothing when it is empty): `limit` hits from `offset` in `sort` order, the
/// matched files of the first `shown`, and the counts per category when `counts`.
///
/// The counts run beside the hits, on a second connection of the pool: on a large index
/// each is a query of its own over the same matches, and one after the other they made the
/// slowest pages (two common words at 10 M torrents: 82 ms where each alone is under 50).
/// Each holds its own permit only while it runs, so pages asking for two cannot starve
/// each other out of the pool.
pub async fn find(
    st: &Arc<AppState>,
    q: SearchQuery,
    sort: SearchSort,
    (limit, offset, shown): (usize, usize, usize),
    counts: bool,
) -> Result<Found, DbError> {
    if q.is_empty() {
        return Ok(Found::default());
    }
    let hits = {
        let q = q.clone();
        st.pool.run(move |s| {
            let hits = s.find(&q, sort, limit, offset)?;
            let matched = s.matched_files(&q, &hits[..shown.min(hits.len())])?;
            Ok((hits, matched))
        })
    };
    let counts = async {
        if counts {
            st.pool.run(move |s| s.category_counts(&q)).await.map(Some)
        } else {
            Ok(None)
        }
    };
    let ((hits, matched), counts) = tokio::try_join!(hits, counts)?;
    Ok(Found {
        hits,
        matched,
        counts,
    })
}
