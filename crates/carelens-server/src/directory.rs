//! The search directory: every provider with its earliest free opening, kept in memory so a
//! search ranks 10 000 providers without reading them (and a million openings) per request.
//!
//! **Freshness.** The snapshot is rebuilt from the store when it is older than
//! [`SearchDirectory::ttl`] (a search that finds it stale starts the rebuild in the background
//! and answers from the old one; only the very first search waits). This server's own writes
//! update it at once: a booking, reschedule or cancellation re-reads that provider's earliest
//! opening, a review its rating. Writes by other processes (an `availability import`, a
//! second server on the same MongoDB) show within the ttl. The earliest opening shown is a
//! ranking hint: the openings endpoint and the booking itself always read the store.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use carelens_booking::policy::Policy;
use carelens_booking::search::{Candidate, SearchPage, SearchQuery, search};
use carelens_domain::{Provider, ProviderId};
use carelens_store::{PageRequest, Store, StoreError};

struct Snapshot {
    built: Instant,
    providers: Vec<Provider>,
    index: HashMap<ProviderId, usize>,
    earliest: Vec<Option<DateTime<Utc>>>,
}

/// A search answer with the providers of its hits.
pub struct Found {
    pub page: SearchPage,
    pub providers: Vec<Provider>,
}

pub struct SearchDirectory {
    ttl: Duration,
    snapshot: RwLock<Option<Snapshot>>,
    /// Held while a rebuild runs, so there is one at a time.
    rebuilding: Arc<tokio::sync::Mutex<()>>,
}

impl Default for SearchDirectory {
    fn default() -> Self {
        Self::new(Duration::from_secs(30))
    }
}

fn window(now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let policy = Policy::default();
    (now + policy.min_notice, now + policy.horizon)
}

async fn build(store: &dyn Store) -> Result<Snapshot, StoreError> {
    let mut providers = Vec::new();
    let mut page = Some(PageRequest::first(1000));
    while let Some(req) = page {
        let got = store.list_providers(req).await?;
        providers.extend(got.items);
        page = got.next;
    }
    let (from, to) = window(Utc::now());
    let first: HashMap<ProviderId, DateTime<Utc>> = store.earliest_openings(from, to).await?.into_iter().collect();
    let earliest = providers.iter().map(|p| first.get(&p.id).copied()).collect();
    let index = providers.iter().enumerate().map(|(i, p)| (p.id.clone(), i)).collect();
    Ok(Snapshot { built: Instant::now(), providers, index, earliest })
}

impl SearchDirectory {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, snapshot: RwLock::new(None), rebuilding: Arc::new(tokio::sync::Mutex::new(())) }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn install(&self, s: Snapshot) {
        *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) = Some(s);
    }

    /// Whether the snapshot is missing (`None`) or stale (`Some(true)`).
    fn age_state(&self) -> Option<bool> {
        let guard = self.snapshot.read().unwrap_or_else(|e| e.into_inner());
        guard.as_ref().map(|s| s.built.elapsed() > self.ttl)
    }

    /// Makes sure a snapshot exists, and starts a background rebuild of a stale one.
    async fn ready(self: &Arc<Self>, store: &Arc<dyn Store>) -> Result<(), StoreError> {
        match self.age_state() {
            Some(false) => Ok(()),
            Some(true) => {
                if let Ok(guard) = self.rebuilding.clone().try_lock_owned() {
                    let (me, store) = (self.clone(), store.clone());
                    tokio::spawn(async move {
                        match build(store.as_ref()).await {
                            Ok(s) => me.install(s),
                            Err(e) => tracing::warn!(error = %e, "search directory not rebuilt; the old one stays"),
                        }
                        drop(guard);
                    });
                }
                Ok(())
            }
            None => {
                let _guard = self.rebuilding.lock().await;
                if self.age_state().is_none() {
                    self.install(build(store.as_ref()).await?);
                }
                Ok(())
            }
        }
    }

    /// Ranks the directory for `q` as of `now` (see [`carelens_booking::search`]).
    pub async fn search(
        self: &Arc<Self>,
        store: &Arc<dyn Store>,
        q: &SearchQuery,
        now: DateTime<Utc>,
    ) -> Result<Found, StoreError> {
        self.ready(store).await?;
        let guard = self.snapshot.read().unwrap_or_else(|e| e.into_inner());
        let Some(s) = guard.as_ref() else { return Ok(Found { page: search(q, now, []), providers: vec![] }) };
        let page = search(
            q,
            now,
            s.providers.iter().zip(&s.earliest).map(|(provider, e)| Candidate { provider, earliest: *e }),
        );
        let providers =
            page.hits.iter().filter_map(|h| s.index.get(&h.provider).map(|&i| s.providers[i].clone())).collect();
        Ok(Found { page, providers })
    }

    /// Re-reads `provider`'s earliest free opening after a booking, move or cancellation here.
    pub async fn touch_openings(&self, store: &dyn Store, provider: &ProviderId) -> Result<(), StoreError> {
        if self.age_state().is_none() {
            return Ok(());
        }
        let (from, to) = window(Utc::now());
        // The earliest free opening: openings come by start, so the first page is enough
        // unless all of it is held, which `openings_for` already filters out.
        let first = store.openings_for(provider, from, to).await?.first().map(|o| o.start);
        let mut guard = self.snapshot.write().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = guard.as_mut()
            && let Some(&i) = s.index.get(provider)
        {
            s.earliest[i] = first;
        }
        Ok(())
    }

    /// Replaces a provider's entry (its rating changed here).
    pub fn touch_provider(&self, provider: &Provider) {
        let mut guard = self.snapshot.write().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = guard.as_mut()
            && let Some(&i) = s.index.get(&provider.id)
        {
            s.providers[i] = provider.clone();
        }
    }

    /// Drops the snapshot; the next search rebuilds it (after an availability refresh here).
    pub fn invalidate(&self) {
        *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) = None;
    }
}
