//! One set of openings from carelens's own schedule and every feed.
//!
//! Feed practitioners are matched to the directory by [`PractitionerKey`] (family name,
//! street and number, postcode); a key two directory entries share is ambiguous and matches
//! neither. The same opening listed on several platforms (same provider, same start) becomes
//! one [`Opening`] with every source in its provenance. Openings of one provider never
//! overlap: of two overlapping openings the one that starts first is kept and the other is
//! dropped and counted (at equal starts the listings merge, and the own schedule's end and
//! visit type win over a feed's), because the store guards a slot by its start and two
//! overlapping starts could otherwise both be booked.

use std::collections::{BTreeMap, HashMap};

use carelens_domain::{Opening, Provenance, Provider, ProviderId, Slot};

use crate::feeds::{ParsedFeed, Platform};
use crate::normalise::PractitionerKey;

/// Directory entries by practitioner key.
pub struct Directory {
    by_key: HashMap<PractitionerKey, Option<ProviderId>>,
}

impl Directory {
    pub fn new<'a>(providers: impl IntoIterator<Item = &'a Provider>) -> Self {
        let mut by_key: HashMap<PractitionerKey, Option<ProviderId>> = HashMap::new();
        for p in providers {
            by_key.entry(PractitionerKey::of(p)).and_modify(|v| *v = None).or_insert_with(|| Some(p.id.clone()));
        }
        Self { by_key }
    }

    /// The provider a key names, if exactly one does.
    pub fn find(&self, key: &PractitionerKey) -> Option<&ProviderId> {
        self.by_key.get(key).and_then(Option::as_ref)
    }
}

/// A practitioner a feed lists that the directory does not know (or knows twice).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Unmatched {
    pub platform: Platform,
    pub external_id: String,
    pub practitioner: PractitionerKey,
    pub openings: usize,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct MergeReport {
    /// Sorted by provider, then start.
    pub openings: Vec<Opening>,
    /// Listings folded into an opening another source already had.
    pub duplicates: usize,
    /// Openings dropped because they overlap a kept opening of the same provider.
    pub overlaps: usize,
    pub unmatched: Vec<Unmatched>,
}

/// A parsed feed's openings, matched to directory providers (each with its one source), and
/// the practitioners the directory does not know.
pub fn resolve(directory: &Directory, feed: &ParsedFeed) -> (Vec<Opening>, Vec<Unmatched>) {
    let mut openings = Vec::new();
    let mut unmatched: BTreeMap<(Platform, String), Unmatched> = BTreeMap::new();
    for o in &feed.openings {
        let Some(provider) = directory.find(&o.practitioner) else {
            unmatched
                .entry((o.platform, o.external_id.clone()))
                .or_insert_with(|| Unmatched {
                    platform: o.platform,
                    external_id: o.external_id.clone(),
                    practitioner: o.practitioner.clone(),
                    openings: 0,
                })
                .openings += 1;
            continue;
        };
        openings.push(Opening {
            provider: provider.clone(),
            start: o.start,
            end: o.end,
            visit_type: o.visit_type,
            insurance: o.insurance.clone(),
            sources: vec![Provenance::Feed { feed: o.platform.as_str().into(), external_id: o.external_id.clone() }],
        });
    }
    (openings, unmatched.into_values().collect())
}

/// Own openings as listings of the source `carelens`.
pub fn own_listings(own: &[Slot]) -> Vec<Opening> {
    own.iter()
        .map(|s| Opening {
            provider: s.provider.clone(),
            start: s.start,
            end: s.end,
            visit_type: s.visit_type,
            insurance: vec![],
            sources: vec![Provenance::Own],
        })
        .collect()
}

/// Merges listings of any sources into one set (see the module docs); the own schedule's
/// listings take precedence at equal starts, then the order given.
pub fn merge_listings(listings: Vec<Opening>) -> MergeReport {
    let mut report = MergeReport::default();
    let mut candidates = listings;
    // Stable: at equal provider and start, own listings first, then the given order.
    candidates.sort_by(|a, b| {
        let own = |o: &Opening| !o.sources.contains(&Provenance::Own);
        (&a.provider, a.start, own(a)).cmp(&(&b.provider, b.start, own(b)))
    });
    for c in candidates {
        match report.openings.last_mut() {
            Some(last) if last.provider == c.provider && last.start == c.start => {
                report.duplicates += 1;
                for s in c.sources {
                    if !last.sources.contains(&s) {
                        last.sources.push(s);
                    }
                }
            }
            Some(last) if last.provider == c.provider && c.start < last.end => report.overlaps += 1,
            _ => report.openings.push(c),
        }
    }
    report
}

/// Merges own openings (from [`crate::schedule::own_openings`]) and parsed feeds.
pub fn merge(directory: &Directory, own: &[Slot], feeds: &[ParsedFeed]) -> MergeReport {
    let mut listings = own_listings(own);
    let mut unmatched = Vec::new();
    for feed in feeds {
        let (openings, missing) = resolve(directory, feed);
        listings.extend(openings);
        unmatched.extend(missing);
    }
    let mut report = merge_listings(listings);
    unmatched.sort();
    report.unmatched = unmatched;
    report
}
