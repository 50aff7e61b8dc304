//! The availability pipeline, shared by `carelens availability import` and the server's
//! periodic refresh: fetch (the caller reads files or URLs) → stage raw → normalise → merge.
//!
//! 1. Own openings from every provider's schedule rules over `[now, now + horizon)`, except on
//!    its closures and public holidays, replace the listings of source `carelens`.
//! 2. Each feed is parsed and matched to the directory; a feed that parses replaces its
//!    platform's listings (only openings inside the window are kept), a feed that does not
//!    (unreadable, not JSON, the wrong shape) is reported and its last good listings stay.
//!    Bad entries inside a good feed are reported by JSON path; the rest are imported.
//! 3. All listings are merged (same provider and start across platforms → one opening with
//!    every source; overlaps dropped) and replace the bookable openings.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use carelens_booking::feeds::{self, FeedProblem, Platform};
use carelens_booking::merge::{Directory, Unmatched, merge_listings, own_listings, resolve};
use carelens_booking::schedule::{Closure, own_openings};
use carelens_domain::{Provider, ScheduleRule};
use carelens_store::{PageRequest, Store, StoreError};

/// One feed to import: its platform, a name for messages (file or URL) and its bytes, or why
/// they could not be fetched.
pub struct FeedInput {
    pub platform: Platform,
    pub name: String,
    pub bytes: std::result::Result<Vec<u8>, String>,
}

/// At most this many problems per feed are listed (all are counted).
pub const LISTED_PROBLEMS: usize = 50;

#[derive(Debug, Clone, Serialize)]
pub struct FeedReport {
    pub platform: &'static str,
    pub name: String,
    /// Whether the feed replaced its platform's listings.
    pub imported: bool,
    /// Why it did not, when it did not (its last good listings stay).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub listings: usize,
    /// Listings outside `[now, now + horizon)`, not kept.
    pub outside_window: usize,
    pub problem_count: usize,
    pub problems: Vec<String>,
    pub unmatched_practitioners: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RefreshReport {
    pub providers: usize,
    pub own_listings: usize,
    pub feeds: Vec<FeedReport>,
    /// Bookable openings after merging.
    pub openings: usize,
    /// Listings folded into an opening another source had too.
    pub duplicates: usize,
    /// Listings dropped because they overlapped another opening of the provider.
    pub overlaps: usize,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

fn unmatched_line(u: &Unmatched) -> String {
    format!("{} {} ({}; {} openings)", u.platform.as_str(), u.external_id, u.practitioner, u.openings)
}

fn problem_line(p: &FeedProblem) -> String {
    p.to_string()
}

/// Every provider and every schedule rule in the store.
pub async fn directory(store: &dyn Store) -> Result<(Vec<Provider>, Vec<ScheduleRule>), StoreError> {
    let mut providers: Vec<Provider> = Vec::new();
    let mut page = Some(PageRequest::first(500));
    while let Some(req) = page {
        let got = store.list_providers(req).await?;
        providers.extend(got.items);
        page = got.next;
    }
    let mut rules: Vec<ScheduleRule> = Vec::new();
    for p in &providers {
        rules.extend(store.schedule_rules_for(&p.id).await?);
    }
    Ok((providers, rules))
}

/// The practices' closures in force (withdrawn ones do not close anything).
pub async fn closures(store: &dyn Store, providers: &[Provider]) -> Result<Vec<Closure>, StoreError> {
    let mut out = Vec::new();
    for p in providers {
        out.extend(store.closures_for(&p.id).await?.into_iter().filter(|c| !c.withdrawn).map(|c| Closure {
            provider: Some(c.provider),
            from: c.from,
            to: c.to,
            reason: c.reason,
        }));
    }
    Ok(out)
}

/// Sample Doctolib-style and Jameda-style feeds for the store's providers over
/// `[from, to)` (see `carelens_booking::samples`).
pub async fn sample_feeds(
    store: &dyn Store,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    per_provider: usize,
) -> Result<(serde_json::Value, serde_json::Value), StoreError> {
    let (providers, rules) = directory(store).await?;
    let slots = own_openings(&rules, &[], from, to);
    Ok(carelens_booking::samples::feeds(&providers, &slots, per_provider))
}

/// Runs the pipeline (see the module docs) against `store`.
pub async fn refresh(
    store: &dyn Store,
    feeds: Vec<FeedInput>,
    now: DateTime<Utc>,
    horizon: Duration,
) -> Result<RefreshReport, StoreError> {
    let (from, to) = (now, now + horizon);
    let (providers, rules) = directory(store).await?;
    let closed = closures(store, &providers).await?;
    let own = own_listings(&own_openings(&rules, &closed, from, to));
    store.replace_listings("carelens", &own).await?;
    let directory = Directory::new(&providers);
    let mut reports = Vec::new();
    for feed in feeds {
        let mut r = FeedReport {
            platform: feed.platform.as_str(),
            name: feed.name.clone(),
            imported: false,
            error: None,
            listings: 0,
            outside_window: 0,
            problem_count: 0,
            problems: vec![],
            unmatched_practitioners: vec![],
        };
        let parsed = feed.bytes.and_then(|b| feeds::parse(feed.platform, &feed.name, &b).map_err(|e| e.to_string()));
        match parsed {
            Err(e) => {
                tracing::warn!(feed = %feed.name, error = %e, "feed not imported; its last good listings stay");
                r.error = Some(e);
            }
            Ok(parsed) => {
                r.problem_count = parsed.problems.len();
                r.problems = parsed.problems.iter().take(LISTED_PROBLEMS).map(problem_line).collect();
                let (openings, unmatched) = resolve(&directory, &parsed);
                r.unmatched_practitioners = unmatched.iter().map(unmatched_line).collect();
                let total = openings.len();
                let kept: Vec<_> = openings.into_iter().filter(|o| o.start >= from && o.start < to).collect();
                r.outside_window = total - kept.len();
                r.listings = kept.len();
                store.replace_listings(feed.platform.as_str(), &kept).await?;
                r.imported = true;
            }
        }
        reports.push(r);
    }
    let listings: Vec<_> = store.listings().await?.into_iter().filter(|o| o.start >= from && o.start < to).collect();
    let merged = merge_listings(listings);
    store.replace_openings(&merged.openings).await?;
    Ok(RefreshReport {
        providers: providers.len(),
        own_listings: own.len(),
        feeds: reports,
        openings: merged.openings.len(),
        duplicates: merged.duplicates,
        overlaps: merged.overlaps,
        from,
        to,
    })
}
