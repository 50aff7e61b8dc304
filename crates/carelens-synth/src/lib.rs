//! Deterministic synthetic population for Germany: patients with longitudinal histories
//! from disease modules, providers with schedules and reviews, appointments with realistic
//! waiting times and no-shows, and each patient's ground-truth conditions.
//!
//! The same [`Config`] always yields the same population (and [`Summary::hash`]), whatever the
//! number of threads: each patient has its own random stream, and everything that couples
//! patients (appointment slots, reviews, ratings) is done in patient order by one collector.

mod appointments;
mod patient;
mod providers;
mod rng;
mod tables;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, mpsc};

use carelens_domain::{Appointment, GroundTruth, HistoryEntry, Patient, Provider, Review, ScheduleRule};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use patient::{BOOKING_FUTURE_DAYS, BOOKING_PAST_DAYS};

/// Patients per chunk: the unit of parallel work and of one atomic store write.
pub const CHUNK_PATIENTS: u64 = 2500;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub seed: u64,
    pub patients: u64,
    /// The generation date: histories end here and appointments are booked up to 60 days
    /// after it. Fixed (not "today") so a seed means the same population on any day.
    pub as_of: NaiveDate,
    /// Worker threads (output does not depend on it).
    pub threads: usize,
}

impl Config {
    /// The default generation date.
    pub fn default_as_of() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 10, 1).unwrap_or(NaiveDate::MIN)
    }
}

/// A slice of the population, in generation order, ready to be written atomically.
#[derive(Debug, Clone, Default)]
pub struct Chunk {
    pub providers: Vec<Provider>,
    pub schedule_rules: Vec<ScheduleRule>,
    pub patients: Vec<Patient>,
    pub history: Vec<HistoryEntry>,
    pub ground_truth: Vec<GroundTruth>,
    pub appointments: Vec<Appointment>,
    pub reviews: Vec<Review>,
}

/// What was generated, with a hash over every record in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub seed: u64,
    pub patients: u64,
    pub as_of: NaiveDate,
    pub providers: u64,
    pub schedule_rules: u64,
    pub history_entries: u64,
    pub ground_truth: u64,
    pub appointments: u64,
    pub reviews: u64,
    /// SHA-256 over every generated record in generation order: schedule rules, then per
    /// patient the digest of its own records' canonical JSON followed by its appointments and
    /// reviews, then the providers with their final ratings. Independent of threads and chunking.
    pub hash: String,
}

fn hash_json<T: Serialize>(h: &mut Sha256, v: &T) {
    // Serialising domain types cannot fail (no maps with non-string keys, no custom errors).
    if let Ok(bytes) = serde_json::to_vec(v) {
        h.update(&bytes);
        h.update(b"\n");
    }
}

/// A worker's output: patients with the digest of each one's own records.
struct PatientChunk {
    bundles: Vec<(patient::PatientBundle, [u8; 32])>,
}

fn make_chunk(cfg: &Config, chunk: u64, size: u64) -> PatientChunk {
    let start = chunk * size;
    let end = (start + size).min(cfg.patients);
    let bundles = (start..end)
        .map(|i| {
            let b = patient::generate(cfg, i);
            let mut h = Sha256::new();
            hash_json(&mut h, &b.patient);
            for e in &b.history {
                hash_json(&mut h, e);
            }
            for t in &b.truth {
                hash_json(&mut h, t);
            }
            (b, h.finalize().into())
        })
        .collect();
    PatientChunk { bundles }
}

/// Generates the population described by `cfg`, handing it to `sink` chunk by chunk: first
/// providers and their schedules, then patients in order, then providers again with the
/// ratings their reviews produced. Memory stays bounded by a few chunks. Stops at the first
/// error `sink` returns.
pub fn generate<E: Send>(cfg: &Config, sink: impl FnMut(Chunk) -> Result<(), E>) -> Result<Summary, E> {
    generate_chunked(cfg, CHUNK_PATIENTS, sink)
}

/// [`generate`] with `chunk` patients per chunk; the population and hash do not depend on it.
fn generate_chunked<E: Send>(
    cfg: &Config,
    chunk_size: u64,
    mut sink: impl FnMut(Chunk) -> Result<(), E>,
) -> Result<Summary, E> {
    let chunk_size = chunk_size.max(1);
    let mut hasher = Sha256::new();
    let mut gen_providers = providers::generate(cfg.seed, cfg.patients, cfg.as_of - chrono::Days::new(3 * 365));
    let schedule_rules: Vec<ScheduleRule> = gen_providers.iter().flat_map(|p| p.rules.clone()).collect();
    for r in &schedule_rules {
        hash_json(&mut hasher, r);
    }
    let mut summary = Summary {
        seed: cfg.seed,
        patients: cfg.patients,
        as_of: cfg.as_of,
        providers: gen_providers.len() as u64,
        schedule_rules: schedule_rules.len() as u64,
        history_entries: 0,
        ground_truth: 0,
        appointments: 0,
        reviews: 0,
        hash: String::new(),
    };
    sink(Chunk {
        providers: gen_providers.iter().map(|p| p.provider.clone()).collect(),
        schedule_rules,
        ..Default::default()
    })?;

    let mut booker = appointments::Booker::new(cfg, &gen_providers);
    let n_chunks = cfg.patients.div_ceil(chunk_size);
    let threads = cfg.threads.max(1);
    let ahead = 2 * threads as u64;
    let next = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let emitted = Mutex::new(0u64);
    let progressed = Condvar::new();
    let mut failure = None;

    std::thread::scope(|s| {
        let (tx, rx) = mpsc::sync_channel::<(u64, PatientChunk)>(threads * 2);
        for _ in 0..threads {
            let tx = tx.clone();
            let (next, stop, emitted, progressed) = (&next, &stop, &emitted, &progressed);
            s.spawn(move || {
                loop {
                    let c = next.fetch_add(1, Ordering::Relaxed);
                    if c >= n_chunks {
                        return;
                    }
                    {
                        let mut done = emitted.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                        while c >= *done + ahead && !stop.load(Ordering::Relaxed) {
                            done = progressed.wait(done).unwrap_or_else(std::sync::PoisonError::into_inner);
                        }
                    }
                    if stop.load(Ordering::Relaxed) || tx.send((c, make_chunk(cfg, c, chunk_size))).is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        let mut pending = BTreeMap::new();
        let mut expect = 0u64;
        'recv: for (c, chunk) in rx.iter() {
            pending.insert(c, chunk);
            while let Some(chunk) = pending.remove(&expect) {
                let mut out = Chunk::default();
                for (b, digest) in chunk.bundles {
                    hasher.update(digest);
                    let (appts, reviews) = booker.book(&b);
                    for a in &appts {
                        hash_json(&mut hasher, a);
                    }
                    for r in &reviews {
                        hash_json(&mut hasher, r);
                    }
                    out.appointments.extend(appts);
                    out.reviews.extend(reviews);
                    out.patients.push(b.patient);
                    out.history.extend(b.history);
                    out.ground_truth.extend(b.truth);
                }
                summary.history_entries += out.history.len() as u64;
                summary.ground_truth += out.ground_truth.len() as u64;
                summary.appointments += out.appointments.len() as u64;
                summary.reviews += out.reviews.len() as u64;
                if let Err(e) = sink(out) {
                    failure = Some(e);
                    stop.store(true, Ordering::Relaxed);
                    progressed.notify_all();
                    break 'recv;
                }
                expect += 1;
                *emitted.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = expect;
                progressed.notify_all();
            }
        }
        // Dropping the receiver here unblocks any worker still sending.
    });
    if let Some(e) = failure {
        return Err(e);
    }

    // Ratings from the reviews, then the providers once more.
    let ratings: HashMap<usize, (u32, u32)> = booker.ratings();
    for (i, p) in gen_providers.iter_mut().enumerate() {
        if let Some((count, stars)) = ratings.get(&i) {
            p.provider.rating.count = *count;
            p.provider.rating.mean = (f64::from(*stars) / f64::from(*count) * 100.0).round() / 100.0;
        }
        hash_json(&mut hasher, &p.provider);
    }
    sink(Chunk { providers: gen_providers.into_iter().map(|p| p.provider).collect(), ..Default::default() })?;
    summary.hash = hex::encode(hasher.finalize());
    Ok(summary)
}

#[cfg(test)]
mod tests;
