//! Provider search: filters, then a ranking a patient can follow.
//!
//! **Ranking.** Each provider gets a cost in days, lower first:
//!
//! `cost = days until the earliest opening + km away / 5 + (5 − shrunk rating) × 7`
//!
//! so a patient trades one day of waiting for 5 km of travel, and a week for one star. The
//! rating is the mean stars shrunk towards a prior of 4.0 stars by 10 pseudo-reviews,
//! `(10 × 4.0 + n × mean) / (10 + n)`: a 5.0 from 2 reviews counts as 4.17, a 4.7 from 300 as
//! 4.68. Providers without an opening in the search window come after all that have one;
//! ties go to the nearer, then to the provider id. `min_rating` filters on the shrunk rating.

use chrono::{DateTime, Utc};

use carelens_domain::{GeoPoint, InsuranceKind, Provider, ProviderId, Specialty};

/// Prior mean stars and its weight in reviews.
pub const PRIOR_STARS: f64 = 4.0;
pub const PRIOR_REVIEWS: f64 = 10.0;
/// A day of waiting is worth this many km of travel.
pub const KM_PER_DAY: f64 = 5.0;
/// One star of rating is worth this many days of waiting.
pub const DAYS_PER_STAR: f64 = 7.0;
pub const MAX_PER_PAGE: usize = 100;

/// The mean rating shrunk towards [`PRIOR_STARS`] by its review count.
pub fn shrunk_rating(mean: f64, count: u32) -> f64 {
    let n = f64::from(count);
    if count == 0 { PRIOR_STARS } else { (PRIOR_REVIEWS * PRIOR_STARS + n * mean) / (PRIOR_REVIEWS + n) }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchQuery {
    pub specialty: Option<Specialty>,
    /// Where the patient is, and how far they will go.
    pub near: Option<GeoPoint>,
    pub radius_km: Option<f64>,
    pub insurance: Option<InsuranceKind>,
    /// ISO 639-1 code, e.g. `tr`.
    pub language: Option<String>,
    pub min_rating: Option<f64>,
    /// 0-based page of `per_page` results.
    pub page: usize,
    pub per_page: usize,
}

impl Default for SearchQuery {
    fn default() -> Self {
        Self {
            specialty: None,
            near: None,
            radius_km: None,
            insurance: None,
            language: None,
            min_rating: None,
            page: 0,
            per_page: 20,
        }
    }
}

/// A provider with its earliest opening (for the patient's insurance) in the search window.
pub struct Candidate<'a> {
    pub provider: &'a Provider,
    pub earliest: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub provider: ProviderId,
    pub distance_km: Option<f64>,
    pub earliest: Option<DateTime<Utc>>,
    pub rating: f64,
    pub reviews: u32,
    /// The ranking cost (days); `None` without an opening.
    pub cost: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchPage {
    pub hits: Vec<Hit>,
    /// Providers that passed the filters, over all pages.
    pub total: usize,
    pub page: usize,
    pub per_page: usize,
}

/// Whether `p` passes the query's filters (distance is checked in [`search`]).
pub fn matches(q: &SearchQuery, p: &Provider) -> bool {
    q.specialty.is_none_or(|s| p.specialty == s)
        && q.insurance.is_none_or(|i| p.accepts.contains(&i))
        && q.language.as_deref().is_none_or(|l| p.languages.iter().any(|x| x.as_str().eq_ignore_ascii_case(l)))
        && q.min_rating.is_none_or(|m| shrunk_rating(p.rating.mean, p.rating.count) >= m)
}

/// Filters and ranks `candidates` as of `now`, then cuts out the requested page.
pub fn search<'a>(
    q: &SearchQuery,
    now: DateTime<Utc>,
    candidates: impl IntoIterator<Item = Candidate<'a>>,
) -> SearchPage {
    let mut hits: Vec<Hit> = candidates
        .into_iter()
        .filter(|c| matches(q, c.provider))
        .filter_map(|c| {
            let distance_km = q.near.map(|n| n.distance_km(c.provider.location));
            if let (Some(d), Some(r)) = (distance_km, q.radius_km)
                && d > r
            {
                return None;
            }
            let rating = shrunk_rating(c.provider.rating.mean, c.provider.rating.count);
            let cost = c.earliest.map(|e| {
                let days = ((e - now).num_minutes().max(0) as f64) / 1440.0;
                days + distance_km.unwrap_or(0.0) / KM_PER_DAY + (5.0 - rating) * DAYS_PER_STAR
            });
            Some(Hit {
                provider: c.provider.id.clone(),
                distance_km,
                earliest: c.earliest,
                rating,
                reviews: c.provider.rating.count,
                cost,
            })
        })
        .collect();
    hits.sort_by(|a, b| {
        let cost = |h: &Hit| h.cost.unwrap_or(f64::INFINITY);
        cost(a)
            .total_cmp(&cost(b))
            .then(a.distance_km.unwrap_or(0.0).total_cmp(&b.distance_km.unwrap_or(0.0)))
            .then_with(|| a.provider.cmp(&b.provider))
    });
    let per_page = q.per_page.clamp(1, MAX_PER_PAGE);
    let total = hits.len();
    let hits = hits.into_iter().skip(q.page.saturating_mul(per_page)).take(per_page).collect();
    SearchPage { hits, total, page: q.page, per_page }
}
