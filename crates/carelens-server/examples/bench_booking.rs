//! Booking benchmark: provider search latency (p50/p99) and bookings per second over HTTP,
//! through the real router on a real store, for 10 000 providers and 1 000 000 openings.
//!
//! Run with `cargo xtask bench-booking [SECONDS]` (release build). It seeds a store with
//! providers spread over German cities (13 specialties, mixed insurance, languages and
//! ratings) and 100 openings each over the next 90 days, 4 000 patients with accounts and
//! e-mail addresses, starts the server on loopback, then:
//!
//! 1. times building the search directory from the store (read every provider, then the
//!    earliest free opening of each: `earliest_openings`), which every search paid before the
//!    server cached it, and the first search, which builds the cache;
//! 2. searches (random specialty, city within 50 km, the patient's insurance) from 1 and
//!    from 32 keep-alive connections;
//! 3. books distinct openings from 32 connections (each booking: policy checks, the atomic
//!    slot claim, three outbox messages, an audit row, the cache update), at most 5 active
//!    per patient as the policy allows.
//!
//! Embedded (SQLite) always; MongoDB too when `CARELENS_MONGOD_BIN` names a `mongod`.
//! Arguments: `[SECONDS] [PROVIDERS] [OPENINGS_PER_PROVIDER]` (default 10, 10 000, 100).

#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use carelens_domain::places::CITIES;
use carelens_domain::{
    Address, GeoPoint, InsuranceKind, Opening, Provenance, Provider, ProviderId, ProviderKind, RatingSummary, Role,
    Specialty, User, UserId, VisitType,
};
use carelens_server::{AppState, Claims, ServerConfig, TokenKey};
use carelens_store::conformance::fixtures;
use carelens_store::{LocalObjects, MongoStore, Store, WriteBatch};
use chrono::{DateTime, Utc};

const PATIENTS: u64 = 4000;
const CONNECTIONS: usize = 32;

/// splitmix64: a small deterministic generator, so every run seeds the same data.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn providers(n: u64, rng: &mut Rng) -> Vec<Provider> {
    (0..n)
        .map(|i| {
            let city = &CITIES[rng.below(CITIES.len() as u64) as usize];
            // Within ~10 km of the city centre.
            let lat = city.lat + (rng.unit() - 0.5) * 0.18;
            let lon = city.lon + (rng.unit() - 0.5) * 0.27;
            let accepts = match rng.below(10) {
                0 => vec![InsuranceKind::Private],
                1..=3 => vec![InsuranceKind::Statutory],
                _ => vec![InsuranceKind::Statutory, InsuranceKind::Private],
            };
            let mut languages = vec!["de".to_string().try_into().unwrap()];
            if rng.below(3) == 0 {
                languages.push(["en", "tr", "ru", "ar", "pl"][rng.below(5) as usize].to_string().try_into().unwrap());
            }
            let count = rng.below(400) as u32;
            Provider {
                id: ProviderId::from_number(i + 1),
                kind: ProviderKind::Practice,
                name: format!("Praxis {}", i + 1),
                specialty: Specialty::ALL[rng.below(Specialty::ALL.len() as u64) as usize],
                address: Address {
                    street: format!("Hauptstraße {}", 1 + rng.below(200)),
                    postcode: format!("{:05}", city.postcode),
                    city: city.name.into(),
                    region: city.region.into(),
                },
                location: GeoPoint::new(lat, lon).unwrap(),
                accepts,
                languages,
                rating: RatingSummary {
                    count,
                    mean: if count == 0 { 0.0 } else { (30.0 + rng.below(21) as f64) / 10.0 },
                },
            }
        })
        .collect()
}

/// `per` openings per provider on whole quarter hours between 3 h and 90 days from `now`.
fn openings(providers: &[Provider], per: u64, now: DateTime<Utc>, rng: &mut Rng) -> Vec<Opening> {
    let first = now + chrono::Duration::hours(3);
    let first = first
        - chrono::Duration::seconds(first.timestamp() % 900)
        - chrono::Duration::nanoseconds(i64::from(first.timestamp_subsec_nanos()));
    let quarters = 86 * 96u64;
    let mut out = Vec::with_capacity(providers.len() * per as usize);
    for p in providers {
        // Distinct quarter hours, so no two openings of a provider overlap.
        let mut picked = std::collections::BTreeSet::new();
        while (picked.len() as u64) < per {
            picked.insert(rng.below(quarters));
        }
        for q in picked {
            let start = first + chrono::Duration::minutes(15 * q as i64);
            out.push(Opening {
                provider: p.id.clone(),
                start,
                end: start + chrono::Duration::minutes(15),
                visit_type: VisitType::FollowUp,
                insurance: vec![],
                sources: vec![Provenance::Own],
            });
        }
    }
    out
}

struct Load {
    latencies_ms: Vec<f64>,
    errors: usize,
    seconds: f64,
}

impl Load {
    fn quantile(&self, q: f64) -> f64 {
        let n = self.latencies_ms.len();
        if n == 0 {
            return f64::NAN;
        }
        self.latencies_ms[((n as f64 - 1.0) * q).round() as usize]
    }
    fn per_second(&self) -> f64 {
        self.latencies_ms.len() as f64 / self.seconds
    }
}

/// `connections` clients each run `request(k, i)` (their k, their i-th request) until
/// `seconds` pass or it returns `None`; latencies of the requests that returned `Some(ok)`.
async fn load<F, Fut>(connections: usize, seconds: f64, request: F) -> Load
where
    F: Fn(usize, usize) -> Option<Fut> + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let request = Arc::new(request);
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|k| {
            let request = request.clone();
            tokio::spawn(async move {
                let deadline = Instant::now() + Duration::from_secs_f64(seconds);
                let (mut lat, mut errors, mut i) = (Vec::new(), 0, 0);
                while Instant::now() < deadline {
                    let Some(fut) = request(k, i) else { break };
                    let t = Instant::now();
                    let ok = fut.await;
                    lat.push(t.elapsed().as_secs_f64() * 1e3);
                    errors += usize::from(!ok);
                    i += 1;
                }
                (lat, errors)
            })
        })
        .collect();
    let mut all = Load { latencies_ms: vec![], errors: 0, seconds: 0.0 };
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.latencies_ms.extend(l);
        all.errors += e;
    }
    all.seconds = started.elapsed().as_secs_f64();
    all.latencies_ms.sort_by(f64::total_cmp);
    all
}

struct Row {
    backend: &'static str,
    seed_s: f64,
    build_ms: f64,
    first_search_ms: f64,
    search1: Load,
    search32: Load,
    book: Load,
    booked: usize,
}

async fn bench(backend: &'static str, store: Arc<dyn Store>, seconds: f64, n: u64, per: u64) -> Row {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(7);
    let now = Utc::now();
    eprintln!("bench-booking [{backend}]: seeding {n} providers, {} openings, {PATIENTS} patients", n * per);
    let t = Instant::now();
    let directory = providers(n, &mut rng);
    for chunk in directory.chunks(1000) {
        store.apply(WriteBatch { providers: chunk.to_vec(), ..WriteBatch::default() }).await.unwrap();
    }
    let all_openings = openings(&directory, per, now, &mut rng);
    store.replace_openings(&all_openings).await.unwrap();
    let mut patients = Vec::new();
    for i in 0..PATIENTS {
        let mut p = fixtures::patient(i + 1);
        let city = &CITIES[rng.below(CITIES.len() as u64) as usize];
        p.residence.city = city.name.into();
        p.residence.location = GeoPoint::new(city.lat, city.lon).unwrap();
        patients.push(p);
    }
    for chunk in patients.chunks(1000) {
        store.apply(WriteBatch { patients: chunk.to_vec(), ..WriteBatch::default() }).await.unwrap();
    }
    let key = TokenKey::random().unwrap();
    let expires = now + chrono::Duration::hours(2);
    let mut tokens = Vec::new();
    for (i, p) in patients.iter().enumerate() {
        let mut u: User = fixtures::user(0, "x", Role::Patient);
        u.id = UserId::from_u128(1_000_000 + i as u128);
        u.username = format!("patient-{i}");
        u.patient = Some(p.id.clone());
        u.email = Some(format!("patient-{i}@example.org"));
        store.put_user(&u).await.unwrap();
        tokens.push(key.sign(&Claims::for_user(&u, expires)));
    }
    let seed_s = t.elapsed().as_secs_f64();

    // The directory build: what every search paid before the server cached it.
    let t = Instant::now();
    let mut listed = 0;
    let mut page = Some(carelens_store::PageRequest::first(1000));
    while let Some(req) = page {
        let got = store.list_providers(req).await.unwrap();
        listed += got.items.len();
        page = got.next;
    }
    let earliest =
        store.earliest_openings(now + chrono::Duration::hours(2), now + chrono::Duration::days(90)).await.unwrap();
    let build_ms = t.elapsed().as_secs_f64() * 1e3;
    assert_eq!(listed as u64, n);
    assert_eq!(earliest.len() as u64, n, "every provider has a free opening");

    let objects = Arc::new(LocalObjects::open(dir.path().join("objects")).unwrap());
    let state = AppState::new(store.clone(), objects, dir.path().join("models"), key, ServerConfig::default(), None);
    let listener = carelens_server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(carelens_server::serve(listener, state, async {
        stopped.await.ok();
    }));
    let client = reqwest::Client::builder().pool_max_idle_per_host(CONNECTIONS).build().unwrap();
    let tokens = Arc::new(tokens);

    let search_url = {
        let base = base.clone();
        move |i: usize| {
            let mut r = Rng(i as u64 * 7919 + 1);
            let city = &CITIES[r.below(CITIES.len() as u64) as usize];
            let specialty = Specialty::ALL[r.below(Specialty::ALL.len() as u64) as usize];
            format!(
                "{base}/api/v1/providers/search?specialty={}&lat={}&lon={}&radius_km=50",
                specialty.as_str(),
                city.lat,
                city.lon
            )
        }
    };
    let t = Instant::now();
    let first = client.get(search_url(0)).bearer_auth(&tokens[0]).send().await.unwrap();
    assert!(first.status().is_success(), "{}", first.text().await.unwrap_or_default());
    first.bytes().await.unwrap();
    let first_search_ms = t.elapsed().as_secs_f64() * 1e3;

    let search = |connections: usize, secs: f64| {
        let (client, tokens, search_url) = (client.clone(), tokens.clone(), search_url.clone());
        load(connections, secs, move |k, i| {
            let (client, url, token) =
                (client.clone(), search_url(k * 100_003 + i), tokens[(k * 31 + i) % tokens.len()].clone());
            Some(async move {
                match client.get(url).bearer_auth(token).send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                }
            })
        })
    };
    eprintln!("bench-booking [{backend}]: searching, 1 then {CONNECTIONS} connections, {seconds} s each");
    search(CONNECTIONS, 1.0).await; // warm-up
    let search1 = search(1, seconds).await;
    let search32 = search(CONNECTIONS, seconds).await;

    // Bookings: connection k books for patients k, k + 32, …, five each, on openings of
    // providers that take statutory insurance (the patients' kind), never the same twice.
    let bookable: Vec<(String, DateTime<Utc>)> = {
        let statutory: std::collections::HashSet<&ProviderId> =
            directory.iter().filter(|p| p.accepts.contains(&InsuranceKind::Statutory)).map(|p| &p.id).collect();
        let mut v: Vec<_> = all_openings
            .iter()
            .filter(|o| statutory.contains(&o.provider))
            .map(|o| (o.provider.to_string(), o.start))
            .collect();
        // Spread over providers and time, deterministically.
        let mut r = Rng(11);
        for i in (1..v.len()).rev() {
            v.swap(i, r.below(i as u64 + 1) as usize);
        }
        v
    };
    let bookable = Arc::new(bookable);
    let per_connection = PATIENTS as usize / CONNECTIONS;
    eprintln!("bench-booking [{backend}]: booking from {CONNECTIONS} connections, {seconds} s");
    let book = {
        let (client, tokens, bookable, base) = (client.clone(), tokens.clone(), bookable.clone(), base.clone());
        load(CONNECTIONS, seconds, move |k, i| {
            // Five bookings per patient, then the connection's next patient.
            let patient = k + CONNECTIONS * (i / 5);
            if i / 5 >= per_connection {
                return None;
            }
            let (provider, start) = bookable[k + CONNECTIONS * i].clone();
            let (client, token, url) = (client.clone(), tokens[patient].clone(), format!("{base}/api/v1/appointments"));
            Some(async move {
                let sent = client
                    .post(url)
                    .bearer_auth(token)
                    .header("idempotency-key", format!("bench-{k}-{i}"))
                    .json(&serde_json::json!({"provider": provider, "start": start}))
                    .send()
                    .await;
                match sent {
                    Ok(r) => r.status() == reqwest::StatusCode::CREATED && r.bytes().await.is_ok(),
                    Err(_) => false,
                }
            })
        })
        .await
    };
    let booked = book.latencies_ms.len() - book.errors;
    // Every booking is in the store, once.
    let mut in_store = 0;
    for p in patients.iter().take(CONNECTIONS * per_connection) {
        in_store += store.appointments_for_patient(&p.id).await.unwrap().len();
    }
    assert_eq!(in_store, booked, "bookings answered 201 vs stored");
    stop.send(()).ok();
    server.await.unwrap().unwrap();
    Row { backend, seed_s, build_ms, first_search_ms, search1, search32, book, booked }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: f64 = args.next().map_or(10.0, |s| s.parse().expect("SECONDS"));
    let n: u64 = args.next().map_or(10_000, |s| s.parse().expect("PROVIDERS"));
    let per: u64 = args.next().map_or(100, |s| s.parse().expect("OPENINGS_PER_PROVIDER"));
    let dir = tempfile::tempdir().unwrap();
    let mut rows = Vec::new();
    let sqlite: Arc<dyn Store> =
        Arc::new(carelens_store::SqliteStore::open(dir.path().join("carelens.sqlite")).unwrap());
    rows.push(bench("embedded (SQLite)", sqlite, seconds, n, per).await);
    let _mongo = if std::env::var_os("CARELENS_MONGOD_BIN").is_some() {
        let mongo = carelens_testkit::MongoServer::start().await.expect("mongod");
        let store: Arc<dyn Store> = Arc::new(MongoStore::connect(&mongo.url("bench")).await.unwrap());
        rows.push(bench("MongoDB", store, seconds, n, per).await);
        Some(mongo)
    } else {
        None
    };
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    println!(
        "booking: {n} providers, {} openings, {PATIENTS} patients; release build, server and clients on the same {cores} cores; {seconds} s per load",
        n * per
    );
    println!(
        "| backend | seed s | directory build ms | first search ms | search p50/p99 ms (1 conn) | searches/s (32) | search p50/p99 ms (32) | bookings/s (32) | booking p50/p99 ms | bookings | errors |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {:.1} | {:.0} | {:.0} | {:.2} / {:.2} | {:.0} | {:.1} / {:.1} | {:.0} | {:.1} / {:.1} | {} | {} |",
            r.backend,
            r.seed_s,
            r.build_ms,
            r.first_search_ms,
            r.search1.quantile(0.5),
            r.search1.quantile(0.99),
            r.search32.per_second(),
            r.search32.quantile(0.5),
            r.search32.quantile(0.99),
            r.book.per_second(),
            r.book.quantile(0.5),
            r.book.quantile(0.99),
            r.booked,
            r.search1.errors + r.search32.errors + r.book.errors,
        );
    }
    let errors: usize = rows.iter().map(|r| r.search1.errors + r.search32.errors + r.book.errors).sum();
    assert_eq!(errors, 0, "requests failed under load");
}
