//! The backend-independent conformance suite. Every [`Store`] and [`ObjectStore`]
//! implementation runs it; a backend is done when it passes all of it.
//!
//! `run_store_suite` takes a factory so each check starts from an empty store.

#![allow(clippy::unwrap_used)] // a test suite: a failed unwrap is a failed check

use std::sync::Arc;

use carelens_domain::{
    Actor, ActorRole, Address, Appointment, AppointmentId, AppointmentStatus, AuditAction, AuditOutcome, Category,
    ClinicalStatus, Condition, ConsentGrant, ConsentId, Diagnosis, DocumentId, DocumentKind, DocumentRef, EntryId,
    GENESIS_HASH, GeoPoint, Grantee, GroundTruth, HealthId, HistoryEntry, HistoryKind, Insurance, InsuranceKind,
    ModelRef, Observation, Opening, Patient, PersonName, PredictionSet, PredictionSetId, Provenance, Provider,
    ProviderId, ProviderKind, RatingSummary, Residence, Review, ReviewId, Role, RuleId, ScheduleRule, Sex, Source,
    Specialty, User, UserId, Verdict, VisitType, verify_chain,
};
use carelens_domain::{
    ClosureId, Feedback, FeedbackId, MessageKind, MessageState, OutboxMessage, PracticeClosure, PrescriptionId,
};
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};

use crate::{AuditEvent, HistoryFilter, ObjectStore, PageRequest, Store, StoreError, WriteBatch};

/// Test data builders shared by the suite and other crates' tests.
pub mod fixtures {
    use super::*;

    pub fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid fixture date")
    }

    pub fn time(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).single().expect("valid fixture time")
    }

    pub fn patient(n: u64) -> Patient {
        Patient::new(
            HealthId::from_number(n),
            PersonName { given: format!("Given{n}"), family: format!("Family{n}") },
            date(1950 + (n % 60) as i32, 1 + (n % 12) as u32, 1 + (n % 28) as u32),
            if n.is_multiple_of(2) { Sex::Female } else { Sex::Male },
            Residence {
                region: "Bayern".into(),
                city: "München".into(),
                postcode: "80331".into(),
                location: GeoPoint::new(48.137, 11.575).expect("valid"),
            },
            Insurance { kind: InsuranceKind::Statutory, insurer_id: "108310400".into() },
        )
        .expect("valid fixture patient")
    }

    pub fn provider(n: u64) -> Provider {
        Provider {
            id: ProviderId::from_number(n),
            kind: ProviderKind::Practice,
            name: format!("Praxis {n}"),
            specialty: Specialty::GeneralPractice,
            address: Address {
                street: "Marienplatz 1".into(),
                postcode: "80331".into(),
                city: "München".into(),
                region: "Bayern".into(),
            },
            location: GeoPoint::new(48.137, 11.575).expect("valid"),
            accepts: vec![InsuranceKind::Statutory, InsuranceKind::Private],
            languages: vec!["de".to_string().try_into().expect("valid")],
            rating: RatingSummary { count: 1, mean: 4.0 },
        }
    }

    pub fn diagnosis(id: u128, patient: &HealthId, on: NaiveDate, code: &str) -> HistoryEntry {
        HistoryEntry::new(
            EntryId::from_u128(id),
            patient.clone(),
            on,
            Source::synthetic(),
            HistoryKind::Diagnosis(Diagnosis {
                code: code.parse().expect("valid code"),
                display: "fixture".into(),
                status: ClinicalStatus::Active,
            }),
        )
        .expect("valid fixture entry")
    }

    pub fn observation(id: u128, patient: &HealthId, on: NaiveDate, loinc: &str, value: f64) -> HistoryEntry {
        HistoryEntry::new(
            EntryId::from_u128(id),
            patient.clone(),
            on,
            Source::synthetic(),
            HistoryKind::Observation(Observation::catalogued(loinc, value).expect("valid observation")),
        )
        .expect("valid fixture entry")
    }

    /// An active prescription (Simvastatin 20 mg, one tablet in the evening) from `start` for
    /// `days` days with `refills` refills, not dispensed yet, with a well-formed (not a
    /// verifiable) signature.
    pub fn prescription(
        id: u128,
        patient: &HealthId,
        provider: &ProviderId,
        start: NaiveDate,
        days: u16,
        refills: u8,
    ) -> carelens_domain::Prescription {
        carelens_domain::Prescription {
            id: PrescriptionId::from_u128(id),
            patient: patient.clone(),
            provider: provider.clone(),
            prescriber: carelens_domain::UserId::from_u128(1),
            drug: "C10AA01".parse().expect("valid"),
            display: "Simvastatin".into(),
            strength: "20 mg".into(),
            dose: carelens_domain::Dose { amount: 1.0, unit: "tablet".into(), frequency: "0-0-1".into() },
            start,
            duration_days: days,
            refills_allowed: refills,
            created_at: start.and_hms_opt(9, 0, 0).expect("valid").and_utc(),
            status: carelens_domain::PrescriptionStatus::Active,
            dispensings: vec![],
            refill_requests: vec![],
            acknowledged: vec![],
            reminder_times: vec![],
            reminder_revision: 0,
            signature: carelens_domain::DocumentSignature {
                algorithm: "ed25519".into(),
                public_key_hex: "ab".repeat(32),
                signature_hex: "cd".repeat(64),
            },
        }
    }

    pub fn appointment(id: u128, patient: &HealthId, provider: &ProviderId, start: DateTime<Utc>) -> Appointment {
        Appointment {
            id: AppointmentId::from_u128(id),
            patient: patient.clone(),
            provider: provider.clone(),
            start,
            end: start + Duration::minutes(15),
            visit_type: VisitType::FollowUp,
            status: AppointmentStatus::Booked,
            booked_at: start - Duration::days(10),
            status_changed_at: start - Duration::days(10),
        }
    }

    pub fn prediction_set(id: u128, patient: &HealthId, version: u32) -> PredictionSet {
        PredictionSet {
            id: PredictionSetId::from_u128(id),
            patient: patient.clone(),
            version,
            created_at: time(2026, 1, 1, 8) + Duration::hours(i64::from(version)),
            models: vec![ModelRef { name: "cxr".into(), version: "1".into() }],
            fusion: serde_json::json!({"method": "stacking"}),
            input_fingerprint: format!("fp{version}"),
            predictions: vec![],
        }
    }

    pub fn user(n: u128, name: &str, role: Role) -> User {
        User {
            id: UserId::from_u128(n),
            username: name.into(),
            role,
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            provider: (role == Role::Doctor).then(|| ProviderId::from_number(1)),
            patient: (role == Role::Patient).then(|| HealthId::from_number(1)),
            created_at: time(2026, 1, 1, 8),
            disabled: false,
            email: None,
            signing_keys: vec![],
        }
    }

    pub fn feedback(n: u128, patient: &HealthId, code: &str, verdict: Verdict, at: DateTime<Utc>) -> Feedback {
        Feedback {
            id: FeedbackId::from_u128(n),
            patient: patient.clone(),
            prediction_set: PredictionSetId::from_u128(1),
            set_version: 1,
            code: code.parse().expect("fixture code"),
            verdict,
            comment: Some("checked against the X-ray".into()),
            doctor: UserId::from_u128(1),
            at,
        }
    }
}

use fixtures::*;

type Check = fn(Arc<dyn Store>) -> futures_lite::BoxFuture<'static, ()>;

mod futures_lite {
    pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
}

macro_rules! checks {
    ($($name:ident),* $(,)?) => {
        const STORE_CHECKS: &[(&str, Check)] = &[$((stringify!($name), |s| Box::pin($name(s)))),*];
    };
}

checks!(
    patient_and_history_round_trip,
    upserts_are_idempotent,
    batches_are_atomic,
    invalid_values_are_rejected_before_writing,
    pagination_visits_everything_once,
    one_booking_per_slot,
    bookings_are_idempotent_by_id,
    rescheduling_is_atomic,
    booking_storm_books_each_slot_once,
    listings_and_openings,
    outbox_enqueues_once_and_claims_exclusively,
    appointment_status_flow,
    providers_reviews_and_rules,
    prediction_set_versions,
    consents_upsert_and_revoke,
    audit_chain_under_concurrency,
    documents_round_trip,
    prescriptions_round_trip,
    care_teams_round_trip,
    users_are_unique_by_name,
    feedback_round_trip,
    meta_round_trip,
    concurrent_writers,
    counts_add_up,
);

/// Runs every store check, each against a fresh store from `make`. Panics naming the check
/// that failed. Returns the number of checks run.
pub async fn run_store_suite<F, Fut>(mut make: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Arc<dyn Store>>,
{
    for (name, check) in STORE_CHECKS {
        let store = make().await;
        let handle = tokio::spawn(check(store));
        if let Err(e) = handle.await {
            panic!("conformance check `{name}` failed: {e}");
        }
    }
    eprintln!("conformance: {} store checks passed", STORE_CHECKS.len());
}

async fn patient_and_history_round_trip(s: Arc<dyn Store>) {
    let p = patient(1);
    let later = observation(2, &p.id, date(2024, 6, 1), "4548-4", 7.4);
    let earlier = diagnosis(1, &p.id, date(2023, 2, 1), "E11.9");
    let mental = diagnosis(3, &p.id, date(2024, 1, 1), "F32.1");
    let truth = GroundTruth {
        patient: p.id.clone(),
        condition: Condition::Type2Diabetes,
        onset: date(2023, 1, 1),
        diagnosed: true,
    };
    s.apply(WriteBatch {
        patients: vec![p.clone()],
        history: vec![later.clone(), earlier.clone(), mental.clone()],
        ground_truth: vec![truth.clone()],
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(s.get_patient(&p.id).await.unwrap(), Some(p.clone()));
    assert_eq!(s.get_patient(&HealthId::from_number(999)).await.unwrap(), None);
    let all = s.history(&p.id, &HistoryFilter::default()).await.unwrap();
    assert_eq!(all, vec![earlier.clone(), mental.clone(), later.clone()], "date order");
    let labs = HistoryFilter { categories: vec![Category::Observation], ..Default::default() };
    assert_eq!(s.history(&p.id, &labs).await.unwrap(), vec![later.clone()]);
    let mh = HistoryFilter { categories: vec![Category::MentalHealth], ..Default::default() };
    assert_eq!(s.history(&p.id, &mh).await.unwrap(), vec![mental]);
    let window = HistoryFilter { from: Some(date(2024, 1, 2)), to: Some(date(2024, 12, 31)), ..Default::default() };
    assert_eq!(s.history(&p.id, &window).await.unwrap(), vec![later.clone()]);
    assert_eq!(s.ground_truth(&p.id).await.unwrap(), vec![truth]);
    assert!(s.history(&HealthId::from_number(2), &HistoryFilter::default()).await.unwrap().is_empty());

    // A correction: the replaced entry is kept, hidden unless asked for, with who/when/why.
    let mut fixed = observation(4, &p.id, date(2024, 6, 1), "4548-4", 6.4);
    fixed.corrects = Some(later.id);
    let mut replaced = later.clone();
    replaced.superseded = Some(carelens_domain::Supersession {
        by: fixed.id,
        at: time(2024, 6, 2, 9),
        author: "dr-1".into(),
        reason: "transcription error".into(),
    });
    s.apply(WriteBatch { history: vec![replaced.clone(), fixed.clone()], ..Default::default() }).await.unwrap();
    assert_eq!(s.history(&p.id, &labs).await.unwrap(), vec![fixed.clone()]);
    let everything = HistoryFilter { include_superseded: true, ..labs };
    assert_eq!(s.history(&p.id, &everything).await.unwrap(), vec![replaced, fixed]);
}

async fn upserts_are_idempotent(s: Arc<dyn Store>) {
    let p = patient(1);
    let batch = WriteBatch {
        patients: vec![p.clone()],
        history: vec![diagnosis(1, &p.id, date(2023, 2, 1), "I10")],
        appointments: vec![appointment(1, &p.id, &ProviderId::from_number(1), time(2025, 3, 3, 9))],
        ..Default::default()
    };
    s.apply(batch.clone()).await.unwrap();
    s.apply(batch).await.unwrap();
    let c = s.counts().await.unwrap();
    assert_eq!((c.patients, c.history_entries, c.appointments), (1, 1, 1));
    let mut moved = p.clone();
    moved.residence.city = "Augsburg".into();
    s.apply(WriteBatch { patients: vec![moved.clone()], ..Default::default() }).await.unwrap();
    assert_eq!(s.get_patient(&p.id).await.unwrap(), Some(moved));
}

async fn batches_are_atomic(s: Arc<dyn Store>) {
    let (p1, p2) = (patient(1), patient(2));
    let dr = ProviderId::from_number(1);
    let slot = time(2025, 3, 3, 9);
    let err = s
        .apply(WriteBatch {
            patients: vec![p1.clone(), p2.clone()],
            history: vec![diagnosis(1, &p1.id, date(2023, 1, 1), "I10")],
            // The second appointment takes the first one's slot: the whole batch must fail.
            appointments: vec![appointment(1, &p1.id, &dr, slot), appointment(2, &p2.id, &dr, slot)],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { entity: "appointment", .. }), "{err}");
    assert_eq!(s.get_patient(&p1.id).await.unwrap(), None, "no half-written patient");
    let c = s.counts().await.unwrap();
    assert_eq!((c.patients, c.history_entries, c.appointments), (0, 0, 0));
}

async fn invalid_values_are_rejected_before_writing(s: Arc<dyn Store>) {
    let good = patient(1);
    let mut bad = patient(2);
    bad.residence.postcode = "ABC".into();
    let err = s.apply(WriteBatch { patients: vec![good.clone(), bad], ..Default::default() }).await.unwrap_err();
    match &err {
        StoreError::Invalid { entity, id, source } => {
            assert_eq!((*entity, id.as_str()), ("patient", HealthId::from_number(2).as_str()));
            assert!(source.to_string().contains("residence.postcode"), "{source}");
        }
        other => panic!("expected Invalid, got {other}"),
    }
    assert_eq!(s.get_patient(&good.id).await.unwrap(), None);
    let mut appt = appointment(1, &good.id, &ProviderId::from_number(1), time(2025, 1, 1, 9));
    appt.end = appt.start;
    assert!(matches!(s.book(&appt).await, Err(StoreError::Invalid { entity: "appointment", .. })));
}

async fn pagination_visits_everything_once(s: Arc<dyn Store>) {
    let patients: Vec<Patient> = (0..25).map(patient).collect();
    s.apply(WriteBatch { patients: patients.clone(), ..Default::default() }).await.unwrap();
    let mut seen = Vec::new();
    let mut page = Some(PageRequest::first(10));
    let mut pages = 0;
    while let Some(req) = page {
        let got = s.list_patients(req).await.unwrap();
        assert!(got.items.len() <= 10);
        seen.extend(got.items.into_iter().map(|p| p.id));
        page = got.next;
        pages += 1;
    }
    let mut expected: Vec<HealthId> = patients.into_iter().map(|p| p.id).collect();
    expected.sort();
    assert_eq!(seen, expected);
    assert_eq!(pages, 3);
    let exact = s.list_patients(PageRequest::first(25)).await.unwrap();
    assert_eq!((exact.items.len(), exact.next), (25, None));
}

async fn one_booking_per_slot(s: Arc<dyn Store>) {
    let dr = ProviderId::from_number(1);
    let slot = time(2025, 3, 3, 9);
    let first = appointment(1, &HealthId::from_number(1), &dr, slot);
    s.book(&first).await.unwrap();
    let second = appointment(2, &HealthId::from_number(2), &dr, slot);
    let err = s.book(&second).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { entity: "appointment", .. }), "{err}");
    assert!(err.to_string().contains("already booked"), "{err}");
    // Another provider at the same time, and the same provider at another time, are fine.
    s.book(&appointment(3, &HealthId::from_number(2), &ProviderId::from_number(2), slot)).await.unwrap();
    s.book(&appointment(4, &HealthId::from_number(2), &dr, slot + Duration::minutes(15))).await.unwrap();
    // Cancelling frees the slot.
    s.set_appointment_status(&first.id, AppointmentStatus::Cancelled, slot - Duration::days(1)).await.unwrap();
    s.book(&second).await.unwrap();
    let day = s.appointments_for_provider(&dr, slot, slot + Duration::hours(1)).await.unwrap();
    assert_eq!(day.iter().map(|a| a.id).collect::<Vec<_>>(), vec![first.id, second.id, AppointmentId::from_u128(4)]);
}

async fn bookings_are_idempotent_by_id(s: Arc<dyn Store>) {
    let (dr, p) = (ProviderId::from_number(1), HealthId::from_number(1));
    let a = appointment(1, &p, &dr, time(2025, 3, 3, 9));
    let first = s.book(&a).await.unwrap();
    assert!(first.created);
    // The retried request: nothing written, the stored appointment back.
    let again = s.book(&a).await.unwrap();
    assert!(!again.created);
    assert_eq!(again.appointment, first.appointment);
    // The same key for a different slot is refused, and books nothing.
    let mut other = a.clone();
    other.start += Duration::hours(1);
    other.end += Duration::hours(1);
    let err = s.book(&other).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }) && err.to_string().contains("idempotency key"), "{err}");
    assert!(s.appointments_for_provider(&dr, other.start, other.end).await.unwrap().is_empty());
    // A retry after the patient cancelled does not bring the appointment back.
    s.set_appointment_status(&a.id, AppointmentStatus::Cancelled, a.start - Duration::days(1)).await.unwrap();
    let late = s.book(&a).await.unwrap();
    assert!(!late.created);
    assert_eq!(late.appointment.status, AppointmentStatus::Cancelled);
}

async fn rescheduling_is_atomic(s: Arc<dyn Store>) {
    let dr = ProviderId::from_number(1);
    let nine = time(2025, 3, 3, 9);
    let a = appointment(1, &HealthId::from_number(1), &dr, nine);
    let b = appointment(2, &HealthId::from_number(2), &dr, nine + Duration::minutes(15));
    s.book(&a).await.unwrap();
    s.book(&b).await.unwrap();
    // Onto a held slot: refused, and the old slot is still held.
    let err = s.reschedule(&a.id, b.start, b.end).await.unwrap_err();
    assert!(err.to_string().contains("already booked"), "{err}");
    assert_eq!(s.get_appointment(&a.id).await.unwrap().unwrap().start, nine);
    assert!(s.book(&appointment(3, &HealthId::from_number(3), &dr, nine)).await.is_err());
    // Onto a free slot: moved, and the old one is free.
    let half = nine + Duration::minutes(30);
    let moved = s.reschedule(&a.id, half, half + Duration::minutes(15)).await.unwrap();
    assert_eq!((moved.start, moved.status), (half, AppointmentStatus::Booked));
    assert_eq!(s.get_appointment(&a.id).await.unwrap().unwrap().start, half);
    assert!(s.book(&appointment(3, &HealthId::from_number(3), &dr, nine)).await.unwrap().created);
    // Finished or cancelled appointments stay where they are; unknown ids are not found.
    s.set_appointment_status(&b.id, AppointmentStatus::Cancelled, nine).await.unwrap();
    let err = s.reschedule(&b.id, nine + Duration::hours(2), nine + Duration::hours(3)).await.unwrap_err();
    assert!(err.to_string().contains("only booked or confirmed"), "{err}");
    let err = s.reschedule(&AppointmentId::from_u128(99), half, half).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
}

/// 64 clients race for 100 slots, each trying overlapping slots in its own order and sending
/// every request twice (a retry with the same idempotency key): every slot ends up booked
/// exactly once, and every booking a client was told about is in the store.
async fn booking_storm_books_each_slot_once(s: Arc<dyn Store>) {
    const CLIENTS: u128 = 64;
    const SLOTS: u128 = 100;
    const TRIES: u128 = 12;
    let dr = ProviderId::from_number(1);
    let first = time(2025, 6, 2, 8);
    let slot = move |k: u128| first + Duration::minutes(15 * k as i64);
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let s = Arc::clone(&s);
        let dr = dr.clone();
        tasks.push(tokio::spawn(async move {
            let mut won = Vec::new();
            for t in 0..TRIES {
                let k = (c * 7 + t * 13) % SLOTS;
                let a = appointment(c * 1000 + k, &HealthId::from_number(c as u64 + 1), &dr, slot(k));
                let answer = s.book(&a).await;
                let retry = s.book(&a).await;
                match (answer, retry) {
                    (Ok(b), Ok(r)) => {
                        assert!(b.created && !r.created, "client {c} slot {k}");
                        won.push(a.id);
                    }
                    (Err(StoreError::Conflict { .. }), Err(StoreError::Conflict { .. })) => {}
                    (x, y) => panic!("client {c} slot {k}: {x:?} then {y:?}"),
                }
            }
            won
        }));
    }
    let mut won = Vec::new();
    for t in tasks {
        won.extend(t.await.unwrap());
    }
    let booked = s.appointments_for_provider(&dr, first, slot(SLOTS)).await.unwrap();
    let mut starts: Vec<_> = booked.iter().map(|a| a.start).collect();
    starts.dedup();
    assert_eq!(starts.len(), booked.len(), "a slot was booked twice");
    let mut stored: Vec<_> = booked.iter().map(|a| a.id).collect();
    stored.sort();
    won.sort();
    assert_eq!(stored, won, "the store and the clients disagree on who booked");
    // Every slot some client tried is taken (12 tries × 64 clients cover all 100).
    assert_eq!(booked.len(), SLOTS as usize);
}

async fn listings_and_openings(s: Arc<dyn Store>) {
    let (a, b) = (ProviderId::from_number(1), ProviderId::from_number(2));
    let nine = time(2025, 3, 3, 9);
    let m = Duration::minutes;
    let op = |p: &ProviderId, start: DateTime<Utc>, source: Provenance| Opening {
        provider: p.clone(),
        start,
        end: start + m(15),
        visit_type: VisitType::FollowUp,
        insurance: vec![],
        sources: vec![source],
    };
    let feed = |id: &str| Provenance::Feed { feed: "doctolib".into(), external_id: id.into() };
    assert!(s.listings().await.unwrap().is_empty());
    assert!(s.openings_for(&a, nine, nine + m(60)).await.unwrap().is_empty());
    assert!(s.earliest_openings(nine, nine + m(60)).await.unwrap().is_empty());
    // Listings per source; replacing one source leaves the others.
    s.replace_listings("carelens", &[op(&a, nine, Provenance::Own), op(&a, nine + m(15), Provenance::Own)])
        .await
        .unwrap();
    s.replace_listings("doctolib", &[op(&a, nine, feed("d1")), op(&b, nine, feed("d2"))]).await.unwrap();
    let all = s.listings().await.unwrap();
    assert_eq!(all.len(), 4);
    assert!(all.windows(2).all(|w| (&w[0].provider, w[0].start) <= (&w[1].provider, w[1].start)));
    s.replace_listings("doctolib", &[op(&b, nine + m(60), feed("d2"))]).await.unwrap();
    let all = s.listings().await.unwrap();
    assert_eq!(
        all.iter().map(|o| (o.provider.clone(), o.start)).collect::<Vec<_>>(),
        [(a.clone(), nine), (a.clone(), nine + m(15)), (b.clone(), nine + m(60)),]
    );
    assert_eq!(all[2].sources, [feed("d2")]);
    // A bad listing is refused before anything is replaced.
    let mut bad = op(&a, nine, Provenance::Own);
    bad.end = nine - m(1);
    let err = s.replace_listings("carelens", &[bad.clone()]).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
    assert_eq!(s.listings().await.unwrap().len(), 3);
    // Merged openings; booked slots are not offered.
    let merged = [
        op(&a, nine, Provenance::Own),
        op(&a, nine + m(15), Provenance::Own),
        op(&a, nine + m(30), Provenance::Own),
        op(&b, nine + m(60), feed("d2")),
    ];
    s.replace_openings(&merged).await.unwrap();
    let starts = |v: Vec<Opening>| v.into_iter().map(|o| o.start).collect::<Vec<_>>();
    assert_eq!(starts(s.openings_for(&a, nine, nine + m(60)).await.unwrap()), [nine, nine + m(15), nine + m(30)]);
    let taken = appointment(1, &HealthId::from_number(1), &a, nine);
    s.book(&taken).await.unwrap();
    assert_eq!(starts(s.openings_for(&a, nine, nine + m(60)).await.unwrap()), [nine + m(15), nine + m(30)]);
    assert_eq!(
        s.earliest_openings(nine, nine + m(120)).await.unwrap(),
        [(a.clone(), nine + m(15)), (b.clone(), nine + m(60))]
    );
    assert_eq!(s.earliest_openings(nine + m(20), nine + m(60)).await.unwrap(), [(a.clone(), nine + m(30))]);
    // Cancelling offers the slot again.
    s.set_appointment_status(&taken.id, AppointmentStatus::Cancelled, nine - m(60)).await.unwrap();
    assert_eq!(s.earliest_openings(nine, nine + m(120)).await.unwrap()[0], (a.clone(), nine));
    // A new merge replaces the whole set.
    s.replace_openings(&merged[3..]).await.unwrap();
    assert!(s.openings_for(&a, nine, nine + m(60)).await.unwrap().is_empty());
    assert_eq!(s.earliest_openings(nine, nine + m(120)).await.unwrap(), [(b.clone(), nine + m(60))]);
    assert!(matches!(s.replace_openings(&[bad]).await.unwrap_err(), StoreError::Invalid { .. }));
    assert_eq!(s.earliest_openings(nine, nine + m(120)).await.unwrap().len(), 1);
}

async fn outbox_enqueues_once_and_claims_exclusively(s: Arc<dyn Store>) {
    let t0 = time(2025, 6, 1, 8);
    let h = Duration::hours;
    let msg = |n: u128, kind: MessageKind, due: DateTime<Utc>| {
        OutboxMessage::new(AppointmentId::from_u128(n), kind, t0 + h(48), "patient@example.org", due).unwrap()
    };
    // 40 appointments × confirmation + reminder.
    let mut all = Vec::new();
    for n in 0..40 {
        all.push(msg(n, MessageKind::Confirmation, t0));
        all.push(msg(n, MessageKind::Reminder24h, t0 + h(24)));
    }
    assert_eq!(s.enqueue_messages(&all).await.unwrap(), 80);
    // Again (a retried booking): nothing new, nothing duplicated.
    assert_eq!(s.enqueue_messages(&all[..10]).await.unwrap(), 0);
    assert_eq!(s.outbox_counts().await.unwrap().get("pending"), Some(&80));

    // Eight workers claim concurrently: each due message goes to exactly one of them, and
    // reminders not yet due to none.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let batch = s.claim_messages(t0 + h(1), t0 + h(2), 3).await.unwrap();
                if batch.is_empty() {
                    return got;
                }
                got.extend(batch.into_iter().map(|m| (m.id, m.kind, m.leased_until)));
            }
        }));
    }
    let mut claimed = Vec::new();
    for t in tasks {
        claimed.extend(t.await.unwrap());
    }
    assert_eq!(claimed.len(), 40, "every due confirmation is claimed once");
    assert!(claimed.iter().all(|(_, k, lease)| *k == MessageKind::Confirmation && *lease == Some(t0 + h(2))));
    let mut ids: Vec<_> = claimed.iter().map(|(id, ..)| id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 40, "a message was claimed twice");
    // Leased: nobody else gets them before the lease ends; afterwards they come back.
    assert!(s.claim_messages(t0 + h(1), t0 + h(2), 100).await.unwrap().is_empty());
    let back = s.claim_messages(t0 + h(2), t0 + h(3), 100).await.unwrap();
    assert_eq!(back.len(), 40, "an expired lease frees the message");

    // Outcomes: one sent, one retried later, one dead; a cancelled message stays cancelled.
    let appt = |n: u128| AppointmentId::from_u128(n);
    let mut sent = back.iter().find(|m| m.appointment == Some(appt(0))).unwrap().clone();
    sent.state = MessageState::Sent;
    sent.sent_at = Some(t0 + h(2));
    sent.attempts = 1;
    s.finish_message(&sent).await.unwrap();
    let mut retry = back.iter().find(|m| m.appointment == Some(appt(1))).unwrap().clone();
    retry.attempts = 1;
    retry.next_attempt = t0 + h(5);
    retry.last_error = Some("connection refused".into());
    s.finish_message(&retry).await.unwrap();
    assert_eq!(s.cancel_messages(&appt(2).into()).await.unwrap(), 2, "confirmation and reminder");
    let mut late = back.iter().find(|m| m.appointment == Some(appt(2))).unwrap().clone();
    late.state = MessageState::Sent;
    late.sent_at = Some(t0 + h(2));
    s.finish_message(&late).await.unwrap();

    let m0 = s.messages_for(&appt(0).into()).await.unwrap();
    assert_eq!(m0.len(), 2);
    assert_eq!(
        (m0[0].kind, m0[0].state, m0[0].sent_at, m0[0].leased_until),
        (MessageKind::Confirmation, MessageState::Sent, Some(t0 + h(2)), None)
    );
    assert_eq!(m0[1].state, MessageState::Pending);
    let m1 = s.messages_for(&appt(1).into()).await.unwrap();
    assert_eq!(
        (m1[0].attempts, m1[0].next_attempt, m1[0].last_error.as_deref()),
        (1, t0 + h(5), Some("connection refused"))
    );
    assert!(s.messages_for(&appt(2).into()).await.unwrap().iter().all(|m| m.state == MessageState::Cancelled));
    // The retry is not due before its backoff; enqueueing it again does not reset it.
    assert_eq!(s.enqueue_messages(&[msg(1, MessageKind::Confirmation, t0)]).await.unwrap(), 0);
    let due_at_4: Vec<_> = s.claim_messages(t0 + h(4), t0 + h(4), 100).await.unwrap();
    assert!(due_at_4.iter().all(|m| m.appointment != Some(appt(1))), "claimed before its backoff ended");
    let counts = s.outbox_counts().await.unwrap();
    assert_eq!((counts.get("sent"), counts.get("cancelled"), counts.get("pending")), (Some(&1), Some(&2), Some(&77)));
    assert!(s.messages_for(&appt(99).into()).await.unwrap().is_empty());

    // A prescription's reminders are filed under the prescription, apart from an appointment
    // that happens to share its UUID.
    let rx = PrescriptionId::from_u128(0);
    let reminders: Vec<_> = (0..3)
        .map(|d| {
            OutboxMessage::for_prescription(
                rx,
                MessageKind::MedicationReminder,
                t0 + h(24 * d),
                "patient@example.org",
                0,
            )
            .unwrap()
        })
        .collect();
    assert_eq!(s.enqueue_messages(&reminders).await.unwrap(), 3);
    assert_eq!(s.enqueue_messages(&reminders).await.unwrap(), 0);
    let mine = s.messages_for(&rx.into()).await.unwrap();
    assert_eq!(mine.iter().map(|m| (m.prescription, m.appointment)).collect::<Vec<_>>(), [(Some(rx), None); 3]);
    assert_eq!(s.messages_for(&appt(0).into()).await.unwrap().len(), 2, "the appointment keeps only its own");
    assert_eq!(s.cancel_messages(&rx.into()).await.unwrap(), 3);
    assert_eq!(
        s.messages_for(&appt(0).into()).await.unwrap().iter().filter(|m| m.state == MessageState::Pending).count(),
        1,
        "cancelling the reminders left the appointment's reminder alone"
    );
}

async fn appointment_status_flow(s: Arc<dyn Store>) {
    let p = HealthId::from_number(1);
    let a = appointment(1, &p, &ProviderId::from_number(1), time(2025, 3, 3, 9));
    s.book(&a).await.unwrap();
    let at = a.start;
    for status in [AppointmentStatus::Confirmed, AppointmentStatus::CheckedIn, AppointmentStatus::Completed] {
        assert_eq!(s.set_appointment_status(&a.id, status, at).await.unwrap().status, status);
    }
    let err = s.set_appointment_status(&a.id, AppointmentStatus::Cancelled, at).await.unwrap_err();
    assert!(err.to_string().contains("cannot go from completed to cancelled"), "{err}");
    assert_eq!(s.get_appointment(&a.id).await.unwrap().unwrap().status, AppointmentStatus::Completed);
    let missing = s.set_appointment_status(&AppointmentId::from_u128(99), AppointmentStatus::Confirmed, at).await;
    assert!(matches!(missing, Err(StoreError::NotFound { entity: "appointment", .. })));
    assert_eq!(s.appointments_for_patient(&p).await.unwrap().len(), 1);
}

async fn providers_reviews_and_rules(s: Arc<dyn Store>) {
    let dr = provider(1);
    let review = Review {
        id: ReviewId::from_u128(1),
        provider: dr.id.clone(),
        patient: HealthId::from_number(1),
        stars: 5,
        text: "Sehr freundlich".into(),
        date: date(2025, 1, 1),
        verified_visit: true,
    };
    let rule = ScheduleRule {
        id: RuleId::from_u128(1),
        provider: dr.id.clone(),
        weekday: Weekday::Tue,
        start: NaiveTime::from_hms_opt(8, 0, 0).expect("valid"),
        end: NaiveTime::from_hms_opt(12, 0, 0).expect("valid"),
        slot_minutes: 15,
        visit_type: VisitType::FollowUp,
        valid_from: date(2025, 1, 1),
        valid_until: None,
    };
    s.apply(WriteBatch {
        providers: vec![dr.clone(), provider(2)],
        reviews: vec![review.clone()],
        schedule_rules: vec![rule.clone()],
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(s.get_provider(&dr.id).await.unwrap(), Some(dr.clone()));
    assert_eq!(s.list_providers(PageRequest::first(10)).await.unwrap().items.len(), 2);
    assert_eq!(s.reviews_for(&dr.id).await.unwrap(), vec![review]);
    assert_eq!(s.schedule_rules_for(&dr.id).await.unwrap(), vec![rule]);
    assert!(s.reviews_for(&ProviderId::from_number(2)).await.unwrap().is_empty());
    // Closures: by first day; withdrawing one is an upsert of the same id; a bad one is refused
    // before anything is written.
    let closure = |n: u128, from: NaiveDate, to: NaiveDate| PracticeClosure {
        id: ClosureId::from_u128(n),
        provider: dr.id.clone(),
        from,
        to,
        reason: "Urlaub".into(),
        withdrawn: false,
    };
    let (late, early) =
        (closure(1, date(2025, 8, 1), date(2025, 8, 14)), closure(2, date(2025, 3, 3), date(2025, 3, 3)));
    s.apply(WriteBatch { closures: vec![late.clone(), early.clone()], ..Default::default() }).await.unwrap();
    assert_eq!(s.closures_for(&dr.id).await.unwrap(), vec![early.clone(), late.clone()]);
    let withdrawn = PracticeClosure { withdrawn: true, ..late.clone() };
    s.apply(WriteBatch { closures: vec![withdrawn.clone()], ..Default::default() }).await.unwrap();
    assert_eq!(s.closures_for(&dr.id).await.unwrap(), vec![early.clone(), withdrawn]);
    let backwards = closure(3, date(2025, 9, 2), date(2025, 9, 1));
    let err = s.apply(WriteBatch { closures: vec![backwards], ..Default::default() }).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
    assert_eq!(s.closures_for(&dr.id).await.unwrap().len(), 2);
    assert!(s.closures_for(&ProviderId::from_number(2)).await.unwrap().is_empty());
}

async fn prediction_set_versions(s: Arc<dyn Store>) {
    let p = HealthId::from_number(1);
    assert_eq!(s.latest_prediction_set(&p).await.unwrap(), None);
    s.put_prediction_set(&prediction_set(1, &p, 1)).await.unwrap();
    s.put_prediction_set(&prediction_set(2, &p, 2)).await.unwrap();
    let err = s.put_prediction_set(&prediction_set(3, &p, 2)).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { entity: "prediction set", .. }), "{err}");
    assert_eq!(s.latest_prediction_set(&p).await.unwrap().unwrap().version, 2);
    assert_eq!(s.prediction_sets(&p).await.unwrap().iter().map(|x| x.version).collect::<Vec<_>>(), vec![1, 2]);
}

async fn consents_upsert_and_revoke(s: Arc<dyn Store>) {
    let p = HealthId::from_number(1);
    let mut g = ConsentGrant {
        id: ConsentId::from_u128(1),
        patient: p.clone(),
        grantee: Grantee::Provider(ProviderId::from_number(1)),
        categories: vec![Category::Diagnosis, Category::Observation],
        valid_from: time(2025, 1, 1, 0),
        valid_until: None,
        revoked_at: None,
        emergency_reason: None,
    };
    s.put_consent(&g).await.unwrap();
    g.revoked_at = Some(time(2025, 2, 1, 0));
    s.put_consent(&g).await.unwrap();
    let got = s.consents_for(&p).await.unwrap();
    assert_eq!(got, vec![g.clone()]);
    assert!(!got[0].is_active_at(time(2025, 3, 1, 0)));
    g.categories.clear();
    assert!(matches!(s.put_consent(&g).await, Err(StoreError::Invalid { entity: "consent", .. })));
}

async fn audit_chain_under_concurrency(s: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for i in 0..20u64 {
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            s.append_audit(AuditEvent {
                at: time(2025, 1, 1, 0) + Duration::seconds(i as i64),
                actor: Actor { role: ActorRole::Doctor, id: format!("dr-{i}") },
                action: AuditAction::Read,
                patient: Some(HealthId::from_number(i)),
                resource: format!("history/{i}"),
                outcome: AuditOutcome::Allowed,
                reason: None,
            })
            .await
            .unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let log = s.audit_log(0, 1000).await.unwrap();
    assert_eq!(log.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=20).collect::<Vec<_>>());
    assert_eq!(verify_chain(&log, GENESIS_HASH.into()), Ok(()));
    assert_eq!(s.audit_log(18, 10).await.unwrap().len(), 2);
    // Entry i is about patient i (see above): patient 3's, newest first.
    let about = s.audit_for_patient(&HealthId::from_number(3), 10).await.unwrap();
    assert_eq!(about.iter().map(|e| e.patient.clone()).collect::<Vec<_>>(), vec![Some(HealthId::from_number(3))]);
    assert!(s.audit_for_patient(&HealthId::from_number(999), 10).await.unwrap().is_empty());
    let rows = s.audit_rows(18, 10).await.unwrap();
    assert_eq!(rows, vec![(19, log[18].clone()), (20, log[19].clone())]);
    // Checkpoints: one per seq (the first stays), listed by seq.
    assert!(s.audit_checkpoints().await.unwrap().is_empty());
    let cp = |e: &carelens_domain::AuditEntry, sig: &str| carelens_domain::AuditCheckpoint {
        seq: e.seq,
        hash: e.hash.clone(),
        at: time(2025, 1, 2, 0),
        key: "k".repeat(64),
        signature: sig.repeat(128),
    };
    s.put_audit_checkpoint(&cp(&log[19], "a")).await.unwrap();
    s.put_audit_checkpoint(&cp(&log[9], "b")).await.unwrap();
    s.put_audit_checkpoint(&cp(&log[19], "c")).await.unwrap();
    assert_eq!(s.audit_checkpoints().await.unwrap(), vec![cp(&log[9], "b"), cp(&log[19], "a")]);
}

async fn care_teams_round_trip(s: Arc<dyn Store>) {
    use carelens_domain::{CareTeam, CareTeamId, UserId};
    let team = |n: u128, day: u32, members: Vec<ProviderId>| CareTeam {
        id: CareTeamId::from_u128(n),
        name: format!("Team {n}"),
        members,
        created_by: UserId::from_u128(1),
        created_at: time(2025, 2, day, 9),
    };
    let (a, b) = (team(1, 5, vec![ProviderId::from_number(1)]), team(2, 1, vec![ProviderId::from_number(2)]));
    s.put_care_team(&a).await.unwrap();
    s.put_care_team(&b).await.unwrap();
    let mut grown = a.clone();
    grown.members.push(ProviderId::from_number(3));
    s.put_care_team(&grown).await.unwrap();
    assert_eq!(s.get_care_team(&a.id).await.unwrap(), Some(grown.clone()));
    assert_eq!(s.list_care_teams().await.unwrap(), vec![b, grown], "by creation time, upserted");
    assert_eq!(s.get_care_team(&CareTeamId::from_u128(9)).await.unwrap(), None);
    let twice = team(3, 1, vec![ProviderId::from_number(1), ProviderId::from_number(1)]);
    assert!(matches!(s.put_care_team(&twice).await, Err(StoreError::Invalid { .. })));
}

async fn prescriptions_round_trip(s: Arc<dyn Store>) {
    use carelens_domain::Dispensing;
    let p = HealthId::from_number(1);
    let rx = |n: u128, day: u32| {
        let mut rx = prescription(n, &p, &ProviderId::from_number(1), date(2025, 1, day), 30, 2);
        rx.created_at = time(2025, 1, day, 9);
        rx
    };
    let (mut later, earlier) = (rx(2, 9), rx(1, 2));
    later.reminder_times = vec![NaiveTime::from_hms_opt(8, 0, 0).unwrap(), NaiveTime::from_hms_opt(20, 30, 0).unwrap()];
    later.reminder_revision = 2;
    s.put_prescription(&later).await.unwrap();
    s.put_prescription(&earlier).await.unwrap();
    let mut filled = later.clone();
    filled.dispensings.push(Dispensing { at: time(2025, 1, 10, 8), refill: false });
    s.put_prescription(&filled).await.unwrap();
    assert_eq!(s.get_prescription(&later.id).await.unwrap(), Some(filled.clone()));
    assert_eq!(s.prescriptions_for(&p).await.unwrap(), vec![earlier, filled], "oldest first, upserted");
    assert!(s.prescriptions_for(&HealthId::from_number(2)).await.unwrap().is_empty());
    let mut bad = rx(3, 3);
    bad.duration_days = 0;
    assert!(matches!(s.put_prescription(&bad).await, Err(StoreError::Invalid { .. })));
}

async fn documents_round_trip(s: Arc<dyn Store>) {
    let p = HealthId::from_number(1);
    let sha = "ab".repeat(32);
    let doc = DocumentRef {
        id: DocumentId::from_u128(1),
        patient: p.clone(),
        kind: DocumentKind::LabReport,
        content_type: "application/pdf".into(),
        object_key: carelens_domain::ObjectKey::for_sha256(&sha).expect("valid"),
        sha256: sha,
        size_bytes: 1234,
        uploaded_by: "dr-1".into(),
        uploaded_at: time(2025, 1, 1, 0),
        signature: None,
        encryption: None,
        title: String::new(),
    };
    s.put_document(&doc).await.unwrap();
    assert_eq!(s.get_document(&doc.id).await.unwrap(), Some(doc.clone()));
    assert_eq!(s.documents_for(&p).await.unwrap(), vec![doc]);
    assert_eq!(s.get_document(&DocumentId::from_u128(2)).await.unwrap(), None);
}

async fn meta_round_trip(s: Arc<dyn Store>) {
    assert_eq!(s.get_meta("k").await.unwrap(), None);
    s.set_meta("k", "v1").await.unwrap();
    s.set_meta("k", "v2").await.unwrap();
    assert_eq!(s.get_meta("k").await.unwrap().as_deref(), Some("v2"));
    s.set_meta("a", "first").await.unwrap();
    assert_eq!(s.list_meta().await.unwrap(), vec![("a".into(), "first".into()), ("k".into(), "v2".into())]);
}

async fn concurrent_writers(s: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for w in 0..8u64 {
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            for b in 0..5u64 {
                let patients = (0..10).map(|i| patient(w * 1000 + b * 10 + i)).collect();
                s.apply(WriteBatch { patients, ..Default::default() }).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(s.counts().await.unwrap().patients, 8 * 5 * 10);
}

async fn users_are_unique_by_name(s: Arc<dyn Store>) {
    let mut doctor = user(1, "dr.weber", Role::Doctor);
    s.put_user(&doctor).await.unwrap();
    s.put_user(&user(2, "analyst", Role::Analyst)).await.unwrap();
    assert_eq!(s.get_user(&doctor.id).await.unwrap().as_ref(), Some(&doctor));
    assert_eq!(s.user_by_name("dr.weber").await.unwrap().as_ref(), Some(&doctor));
    assert_eq!(s.user_by_name("nobody").await.unwrap(), None);
    // Upsert by id (a disabled account keeps its name).
    doctor.disabled = true;
    s.put_user(&doctor).await.unwrap();
    assert!(s.user_by_name("dr.weber").await.unwrap().unwrap().disabled);
    // Another id with a taken name is a conflict, not a second account.
    let err = s.put_user(&user(3, "dr.weber", Role::Admin)).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { entity: "user", .. }), "{err}");
    let names: Vec<String> = s.list_users().await.unwrap().into_iter().map(|u| u.username).collect();
    assert_eq!(names, ["analyst", "dr.weber"]);
    let mut bad = user(4, "x", Role::Admin);
    assert!(matches!(s.put_user(&bad).await, Err(StoreError::Invalid { entity: "user", .. })));
    bad.username = "plain.password".into();
    bad.password_hash = "hunter2".into();
    assert!(matches!(s.put_user(&bad).await, Err(StoreError::Invalid { entity: "user", .. })));
    assert_eq!(s.counts().await.unwrap().users, 2);
}

async fn feedback_round_trip(s: Arc<dyn Store>) {
    let (p, q) = (HealthId::from_number(1), HealthId::from_number(2));
    let late = feedback(1, &p, "J18", Verdict::Confirmed, time(2026, 2, 2, 9));
    let early = feedback(2, &p, "I25", Verdict::Rejected, time(2026, 2, 1, 9));
    let other = feedback(3, &q, "E11", Verdict::Confirmed, time(2026, 2, 3, 9));
    for f in [&late, &early, &other] {
        s.put_feedback(f).await.unwrap();
    }
    assert_eq!(s.feedback_for(&p).await.unwrap(), vec![early.clone(), late.clone()]);
    assert_eq!(s.all_feedback().await.unwrap(), vec![early, late, other]);
    let mut long = feedback(4, &p, "J18", Verdict::Rejected, time(2026, 2, 4, 9));
    long.comment = Some("x".repeat(carelens_domain::MAX_COMMENT + 1));
    assert!(matches!(s.put_feedback(&long).await, Err(StoreError::Invalid { entity: "feedback", .. })));
    assert_eq!(s.counts().await.unwrap().feedback, 3);
}

async fn counts_add_up(s: Arc<dyn Store>) {
    let (p1, p2) = (patient(1), patient(2));
    s.apply(WriteBatch {
        patients: vec![p1.clone(), p2.clone()],
        history: vec![
            diagnosis(1, &p1.id, date(2020, 1, 1), "E11.9"),
            diagnosis(2, &p2.id, date(2020, 1, 1), "F41.1"),
            observation(3, &p1.id, date(2020, 1, 1), "2345-7", 140.0),
        ],
        ground_truth: vec![GroundTruth {
            patient: p1.id.clone(),
            condition: Condition::Type2Diabetes,
            onset: date(2019, 6, 1),
            diagnosed: true,
        }],
        providers: vec![provider(1)],
        appointments: vec![appointment(1, &p1.id, &ProviderId::from_number(1), time(2025, 1, 1, 9))],
        ..Default::default()
    })
    .await
    .unwrap();
    let c = s.counts().await.unwrap();
    assert_eq!((c.patients, c.providers, c.history_entries, c.appointments), (2, 1, 3, 1));
    assert_eq!(c.history_by_category.get("diagnosis"), Some(&1));
    assert_eq!(c.history_by_category.get("mental_health"), Some(&1));
    assert_eq!(c.history_by_category.get("observation"), Some(&1));
    assert_eq!(c.appointments_by_status.get("booked"), Some(&1));
    assert_eq!(c.ground_truth_by_condition.get("type2_diabetes"), Some(&1));
}

/// Runs every object-store check against `store` (which may hold other objects).
pub async fn run_object_suite(store: &dyn ObjectStore) {
    let a = b"first object".to_vec();
    let key = store.put(a.clone()).await.unwrap();
    assert!(key.as_str().starts_with("sha256/"), "{key}");
    assert_eq!(store.put(a.clone()).await.unwrap(), key, "content-addressed puts are idempotent");
    assert_eq!(store.get(&key).await.unwrap(), a);
    assert!(store.exists(&key).await.unwrap());

    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let big_key = store.put(big.clone()).await.unwrap();
    assert_eq!(store.get(&big_key).await.unwrap(), big);

    // Large enough to go through multipart upload on S3.
    let large: Vec<u8> = (0..52 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2_246_822_519) >> 13) as u8).collect();
    let large_key = store.put(large.clone()).await.unwrap();
    assert_eq!(store.get(&large_key).await.unwrap().len(), large.len());
    let dir = tempfile::tempdir().unwrap();
    let copied = dir.path().join("large.bin");
    assert_eq!(store.copy_to(&large_key, &copied).await.unwrap(), large.len() as u64);
    assert!(std::fs::read(&copied).unwrap() == large, "streamed copy differs");
    drop(large);

    let empty_key = store.put(Vec::new()).await.unwrap();
    assert_eq!(store.get(&empty_key).await.unwrap(), Vec::<u8>::new());

    let listed = store.list("sha256/").await.unwrap();
    for k in [&key, &big_key, &empty_key] {
        assert!(listed.contains(k), "{k} not listed");
    }
    let two = &key.as_str()[..9];
    assert!(store.list(two).await.unwrap().iter().all(|k| k.as_str().starts_with(two)));
    assert!(store.list("nothing-here/").await.unwrap().is_empty());

    store.delete(&key).await.unwrap();
    store.delete(&key).await.unwrap();
    assert!(!store.exists(&key).await.unwrap());
    let missing = store.get(&key).await.unwrap_err();
    assert!(matches!(missing, StoreError::NotFound { entity: "object", .. }), "{missing}");
    let missing = store.copy_to(&key, &dir.path().join("missing.bin")).await.unwrap_err();
    assert!(matches!(missing, StoreError::NotFound { entity: "object", .. }), "{missing}");
    eprintln!("conformance: object checks passed on the {} backend", store.backend());
}
