//! Every KPI against values computed by hand on a fixed population of 20 persons, written
//! through `SnapshotWriter` and read back from Parquet.

#![allow(clippy::unwrap_used)]

use carelens_analytics::snapshot::{MANIFEST, Manifest, SCHEMA_VERSION};
use carelens_analytics::{
    AnalyticsError, KpiResult, PatientRecord, Period, Query, Snapshot, SnapshotWriter, find, run,
};
use carelens_domain::Address;
use carelens_domain::{
    Appointment, AppointmentId, AppointmentStatus, AtcCode, ClinicalStatus, Diagnosis, DiagnosisPrediction, Dose,
    EntryId, Feedback, FeedbackId, GeoPoint, HealthId, HistoryEntry, HistoryKind, Insurance, InsuranceKind,
    MedicationStatement, ModelRef, Patient, PersonName, PredictionSet, PredictionSetId, Probability, Provider,
    ProviderId, ProviderKind, RatingSummary, Residence, RiskBand, RuleId, ScheduleRule, Sex, Source, Specialty,
    TherapyModality, TherapySession, UserId, Vaccination, VaccineCode, Verdict, VisitType,
};
use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

fn t(y: i32, m: u32, day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, day, 9, 0, 0).single().unwrap()
}

const AS_OF: (i32, u32, u32) = (2026, 6, 30);

struct Person {
    patient: Patient,
    history: Vec<HistoryEntry>,
    appointments: Vec<Appointment>,
    sets: Vec<PredictionSet>,
    feedback: Vec<Feedback>,
}

struct Fixture {
    people: Vec<Person>,
    providers: Vec<(Provider, Vec<ScheduleRule>)>,
    next: u128,
}

impl Fixture {
    fn id(&mut self) -> u128 {
        self.next += 1;
        self.next
    }

    fn entry(&mut self, p: usize, on: NaiveDate, kind: HistoryKind) {
        let id = self.id();
        let patient = self.people[p].patient.id.clone();
        let e = HistoryEntry::new(EntryId::from_u128(id), patient, on, Source::synthetic(), kind).unwrap();
        self.people[p].history.push(e);
    }

    fn dx(&mut self, p: usize, on: NaiveDate, code: &str, status: ClinicalStatus) {
        let kind = HistoryKind::Diagnosis(Diagnosis { code: code.parse().unwrap(), display: "fixture".into(), status });
        self.entry(p, on, kind);
    }

    fn med(&mut self, p: usize, atc: &str, start: NaiveDate, end: Option<NaiveDate>) {
        let m = MedicationStatement {
            code: atc.parse::<AtcCode>().unwrap(),
            display: "fixture".into(),
            dose: Dose { amount: 1.0, unit: "mg".into(), frequency: "1-0-0".into() },
            start,
            end,
        };
        self.entry(p, start, HistoryKind::Medication(m));
    }

    fn vax(&mut self, p: usize, on: NaiveDate, atc: &str, dose: u8) {
        let v = Vaccination {
            vaccine: VaccineCode::Atc(atc.parse().unwrap()),
            display: "fixture".into(),
            dose_number: dose,
        };
        self.entry(p, on, HistoryKind::Vaccination(v));
    }

    fn therapy(&mut self, p: usize, on: NaiveDate) {
        let s = TherapySession { modality: TherapyModality::CognitiveBehavioural, duration_minutes: 50 };
        self.entry(p, on, HistoryKind::TherapySession(s));
    }

    fn appt(
        &mut self,
        p: usize,
        provider: u64,
        start: DateTime<Utc>,
        booked: DateTime<Utc>,
        status: AppointmentStatus,
    ) {
        let id = self.id();
        let a = Appointment {
            id: AppointmentId::from_u128(id),
            patient: self.people[p].patient.id.clone(),
            provider: ProviderId::from_number(provider),
            start,
            end: start + chrono::Duration::minutes(15),
            visit_type: VisitType::FollowUp,
            status,
            booked_at: booked,
            status_changed_at: booked,
        };
        self.people[p].appointments.push(a);
    }

    fn set(&mut self, p: usize, version: u32, created: DateTime<Utc>, preds: &[(&str, f64, f64, bool)]) {
        let id = self.id();
        let predictions = preds
            .iter()
            .map(|&(code, prob, thr, known)| DiagnosisPrediction {
                code: code.parse().unwrap(),
                display: "fixture".into(),
                probability: Probability::new(prob).unwrap(),
                risk_band: RiskBand::Low,
                threshold: Some(thr),
                known,
                sources: vec![],
                evidence: vec![],
            })
            .collect();
        let set = PredictionSet {
            id: PredictionSetId::from_u128(id),
            patient: self.people[p].patient.id.clone(),
            version,
            created_at: created,
            models: vec![ModelRef { name: "m".into(), version: "1".into() }],
            fusion: serde_json::json!({}),
            input_fingerprint: format!("fp{id}"),
            predictions,
        };
        self.people[p].sets.push(set);
    }

    fn verdict(&mut self, p: usize, code: &str, verdict: Verdict, at: DateTime<Utc>) {
        let id = self.id();
        let set = &self.people[p].sets[0];
        let f = Feedback {
            id: FeedbackId::from_u128(id),
            patient: self.people[p].patient.id.clone(),
            prediction_set: set.id,
            set_version: set.version,
            code: code.parse().unwrap(),
            verdict,
            comment: None,
            doctor: UserId::from_u128(1),
            at,
        };
        self.people[p].feedback.push(f);
    }
}

fn provider(
    n: u64,
    specialty: Specialty,
    region: &str,
    weekday: Weekday,
    hours: (u32, u32),
    slot: u16,
) -> (Provider, Vec<ScheduleRule>) {
    let p = Provider {
        id: ProviderId::from_number(n),
        kind: ProviderKind::Practice,
        name: format!("Praxis {n}"),
        specialty,
        address: Address {
            street: "Hauptstr. 1".into(),
            postcode: "10115".into(),
            city: "X".into(),
            region: region.into(),
        },
        location: GeoPoint::new(52.5, 13.4).unwrap(),
        accepts: vec![InsuranceKind::Statutory, InsuranceKind::Private],
        languages: vec![],
        rating: RatingSummary { count: 0, mean: 0.0 },
    };
    let rule = ScheduleRule {
        id: RuleId::from_u128(u128::from(n)),
        provider: p.id.clone(),
        weekday,
        start: NaiveTime::from_hms_opt(hours.0, 0, 0).unwrap(),
        end: NaiveTime::from_hms_opt(hours.1, 0, 0).unwrap(),
        slot_minutes: slot,
        visit_type: VisitType::FollowUp,
        valid_from: d(2025, 1, 1),
        valid_until: None,
    };
    (p, vec![rule])
}

/// 20 persons: P0–P9 born 1980 (45-49), P10–P17 born 2000 (25-29), P18–P19 born 2020 (05-09);
/// even = female; P0–P9 in Bayern, the rest in Berlin; P15–P19 privately insured.
fn fixture() -> Fixture {
    let people = (0..20u64)
        .map(|n| {
            let birth = match n {
                0..=9 => d(1980, 1, 1),
                10..=17 => d(2000, 1, 1),
                _ => d(2020, 3, 1),
            };
            let patient = Patient::new(
                HealthId::from_number(n + 1),
                PersonName { given: format!("Given{n}"), family: format!("Family{n}") },
                birth,
                if n % 2 == 0 { Sex::Female } else { Sex::Male },
                Residence {
                    region: if n < 10 { "Bayern" } else { "Berlin" }.into(),
                    city: "X".into(),
                    postcode: "10115".into(),
                    location: GeoPoint::new(52.5, 13.4).unwrap(),
                },
                Insurance {
                    kind: if n >= 15 { InsuranceKind::Private } else { InsuranceKind::Statutory },
                    insurer_id: "108310400".into(),
                },
            )
            .unwrap();
            Person { patient, history: vec![], appointments: vec![], sets: vec![], feedback: vec![] }
        })
        .collect();
    let mut f = Fixture {
        people,
        providers: vec![
            provider(1, Specialty::GeneralPractice, "Bayern", Weekday::Mon, (9, 12), 15),
            provider(2, Specialty::Cardiology, "Berlin", Weekday::Tue, (9, 10), 30),
        ],
        next: 0,
    };
    use ClinicalStatus::{Active, Resolved};
    // Diabetes: P0–P3 active since 2020, P4 resolved in 2019, P5 resolved but recorded in the window.
    for p in 0..4 {
        f.dx(p, d(2020, 5, 1), "E11.9", Active);
    }
    f.dx(4, d(2019, 1, 1), "E11.9", Resolved);
    f.dx(5, d(2026, 1, 15), "E11.9", Resolved);
    // Hypertension: P10, first in 2024, again in 2026.
    f.dx(10, d(2024, 3, 1), "I10", Active);
    f.dx(10, d(2026, 2, 1), "I10", Active);
    // Medication: P0 five current, P1 five with one ended, P2 six current.
    const ATC: [&str; 6] = ["A10BA02", "C09AA05", "C10AA05", "B01AC06", "C07AB07", "N06AB06"];
    for atc in &ATC[..5] {
        f.med(0, atc, d(2025, 1, 1), None);
    }
    for (i, atc) in ATC[..5].iter().enumerate() {
        f.med(1, atc, d(2025, 1, 1), (i == 0).then(|| d(2026, 3, 1)));
    }
    for atc in ATC {
        f.med(2, atc, d(2025, 1, 1), None);
    }
    // Vaccinations: P18 three hexavalent doses before 2, P19 two; P0–P8 two COVID-19 doses.
    for (i, on) in [d(2020, 5, 1), d(2020, 7, 1), d(2021, 2, 1)].into_iter().enumerate() {
        f.vax(18, on, "J07CA09", i as u8 + 1);
    }
    for (i, on) in [d(2020, 5, 1), d(2020, 7, 1)].into_iter().enumerate() {
        f.vax(19, on, "J07CA09", i as u8 + 1);
    }
    for p in 0..9 {
        f.vax(p, d(2021, 4, 1), "J07BN01", 1);
        f.vax(p, d(2021, 5, 15), "J07BN01", 2);
    }
    // Therapy: P10 weekly (continuous), P11 with a 35-day pause, P12 one session.
    for day in [5, 12, 19, 26] {
        f.therapy(10, d(2026, 1, day));
    }
    for on in [d(2026, 2, 2), d(2026, 2, 9), d(2026, 3, 16)] {
        f.therapy(11, on);
    }
    f.therapy(12, d(2026, 2, 2));
    // Appointments (provider 1: GP Bayern, Mondays 9–12 in 15 min; 2: cardiology Berlin, Tuesdays 9–10 in 30 min).
    use AppointmentStatus::{Cancelled, Completed, NoShow};
    f.appt(0, 1, t(2026, 1, 10), t(2026, 1, 1), Completed); // wait 9, next visit 15 days later
    f.appt(0, 1, t(2026, 1, 25), t(2026, 1, 11), Completed); // wait 14
    f.appt(1, 1, t(2026, 2, 1), t(2026, 1, 2), NoShow); // wait 30
    f.appt(1, 1, t(2026, 3, 1), t(2026, 2, 1), Completed); // wait 28
    f.appt(2, 2, t(2026, 3, 10), t(2026, 2, 8), Completed); // wait 30, next visit 71 days later
    f.appt(2, 2, t(2026, 5, 20), t(2026, 3, 11), Completed); // wait 70
    f.appt(3, 2, t(2026, 4, 1), t(2026, 3, 20), Cancelled); // wait 12
    f.appt(15, 2, t(2026, 4, 15), t(2026, 4, 13), Completed); // wait 2, private
    // Prediction sets: (code, probability, threshold, known).
    f.set(0, 1, t(2026, 6, 1), &[("E11.9", 0.8, 0.5, true), ("J18.9", 0.2, 0.3, false)]);
    f.set(0, 2, t(2026, 6, 15), &[("E11.9", 0.9, 0.5, true), ("J18.9", 0.4, 0.3, false)]);
    f.set(1, 1, t(2026, 6, 1), &[("E11.9", 0.3, 0.5, true), ("J18.9", 0.1, 0.3, false)]);
    f.set(10, 1, t(2026, 6, 1), &[("E11.9", 0.6, 0.5, false), ("J18.9", 0.05, 0.3, false)]);
    f.verdict(0, "E11.9", Verdict::Confirmed, t(2026, 6, 16));
    f.verdict(10, "E11.9", Verdict::Rejected, t(2026, 6, 16));
    f.verdict(0, "J18.9", Verdict::Rejected, t(2026, 6, 16));
    f
}

fn write(dir: &std::path::Path) -> Manifest {
    let f = fixture();
    let mut w = SnapshotWriter::create(dir, d(AS_OF.0, AS_OF.1, AS_OF.2), b"0123456789abcdef-test-key", false).unwrap();
    for (p, rules) in &f.providers {
        w.add_provider(p, rules);
    }
    for p in &f.people {
        w.add_patient(PatientRecord {
            patient: &p.patient,
            history: &p.history,
            appointments: &p.appointments,
            prediction_sets: &p.sets,
            feedback: &p.feedback,
        })
        .unwrap();
    }
    w.finish().unwrap()
}

fn snapshot() -> (tempfile::TempDir, Snapshot) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("snap");
    write(&dir);
    let s = Snapshot::open(&dir).unwrap();
    (tmp, s)
}

fn q(by: &[&str]) -> Query {
    Query { by: by.iter().map(|s| s.to_string()).collect(), k: 1, ..Query::default() }
}

fn kpi(s: &Snapshot, name: &str, query: Query) -> KpiResult {
    run(s, find(name).unwrap(), &query).unwrap()
}

/// The row whose keys are `keys` (in key-column order), as measure → value.
#[track_caller]
fn cell(r: &KpiResult, keys: &[&str]) -> (bool, Vec<Option<f64>>) {
    let row = r
        .rows
        .iter()
        .find(|row| row.keys.iter().take(keys.len()).map(String::as_str).eq(keys.iter().copied()))
        .unwrap_or_else(|| panic!("no row {keys:?} in {:?}", r.rows.iter().map(|r| &r.keys).collect::<Vec<_>>()));
    (row.suppressed, row.values.clone())
}

#[track_caller]
fn value(r: &KpiResult, keys: &[&str], measure: &str) -> f64 {
    let (suppressed, values) = cell(r, keys);
    assert!(!suppressed, "{keys:?} suppressed");
    values[r.measure(measure).unwrap()].unwrap_or_else(|| panic!("{keys:?} has no {measure}"))
}

#[track_caller]
fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-4, "{a} vs {b}");
}

#[test]
fn prevalence_by_code_and_sex_with_wilson_interval() {
    let (_t, s) = snapshot();
    let r = kpi(&s, "prevalence", q(&[]));
    // P0–P3 active, P5 recorded in the window (resolved), P4 resolved before it: 5 of 20.
    close(value(&r, &["E11", "IV"], "value"), 0.25);
    close(value(&r, &["E11", "IV"], "numerator"), 5.0);
    close(value(&r, &["E11", "IV"], "denominator"), 20.0);
    // Wilson 95 % for 5/20, by hand: (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n).
    close(value(&r, &["E11", "IV"], "ci_low"), 0.111_861);
    close(value(&r, &["E11", "IV"], "ci_high"), 0.468_701);
    close(value(&r, &["I10", "IX"], "value"), 0.05);
    let r = kpi(&s, "prevalence", q(&["sex"]));
    close(value(&r, &["E11", "IV", "female"], "value"), 0.2); // P0, P2 of 10
    close(value(&r, &["E11", "IV", "male"], "value"), 0.3); // P1, P3, P5 of 10
    // Zero cells are there, not dropped: no man has I10 (P10 is a woman).
    close(value(&r, &["I10", "IX", "female"], "numerator"), 1.0);
    close(value(&r, &["I10", "IX", "male"], "numerator"), 0.0);
}

#[test]
fn age_standardised_prevalence_uses_esp_2013_weights() {
    let (_t, s) = snapshot();
    let r = kpi(&s, "prevalence_std", q(&[]));
    // Bands present: 45-49 (7000, 5/10), 25-29 (6000, 0/8), 05-09 (5500, 0/2).
    close(value(&r, &["E11", "IV"], "value"), 7000.0 / 18500.0 * 0.5);
    close(value(&r, &["E11", "IV"], "crude"), 0.25);
    assert_eq!(r.key_columns, ["code", "chapter"]);
}

#[test]
fn incidence_per_1000_person_years_by_quarter() {
    let (_t, s) = snapshot();
    let query = Query { from: Some(d(2026, 1, 1)), to: Some(d(2026, 6, 30)), ..q(&[]) };
    let r = kpi(&s, "incidence", query);
    assert_eq!(r.key_columns, ["code", "chapter", "period", "trend"]);
    // 20 persons, 5 diagnosed before 2026: 15 at risk; Q1 (90 days) has P5.
    let py1 = (15.0 - 0.5) * 90.0 / 365.25;
    close(value(&r, &["E11", "IV", "2026-Q1"], "person_years"), py1);
    close(value(&r, &["E11", "IV", "2026-Q1"], "value"), 1000.0 / py1);
    let py2 = 14.0 * 91.0 / 365.25;
    close(value(&r, &["E11", "IV", "2026-Q2"], "person_years"), py2);
    close(value(&r, &["E11", "IV", "2026-Q2"], "value"), 0.0);
    // I10's first diagnosis was in 2024: no new cases, 19 at risk.
    close(value(&r, &["I10", "IX", "2026-Q1"], "person_years"), 19.0 * 90.0 / 365.25);
    // Two periods are too few for a trend.
    assert_eq!(r.rows[0].keys[3], "n/a");
    // By month: six periods.
    let r = kpi(&s, "incidence", Query { period: Period::Month, from: Some(d(2026, 1, 1)), ..q(&[]) });
    assert_eq!(r.rows.iter().filter(|row| row.keys[0] == "E11").count(), 6);
    close(value(&r, &["E11", "IV", "2026-01"], "cases"), 1.0);
}

#[test]
fn a_partial_last_period_is_named_and_not_charted() {
    let (_t, s) = snapshot();
    // The window ends on 1 April: Q2 is covered for one of its 91 days.
    let query = Query { from: Some(d(2026, 1, 1)), to: Some(d(2026, 4, 1)), ..q(&[]) };
    let r = kpi(&s, "incidence", query);
    assert_eq!(r.partial, vec![("2026-Q2".to_owned(), 1, 91)]);
    // The rows stay (with the right person-time), but the chart draws Q1 only and says so.
    let py2 = 14.0 * 1.0 / 365.25;
    close(value(&r, &["E11", "IV", "2026-Q2"], "person_years"), py2);
    let svg = carelens_analytics::chart::svg(&r);
    assert!(svg.contains("2026-Q2 not shown (1 of 91 days)"), "the chart names the partial period");
    assert!(
        carelens_analytics::output::to_table(&r).contains("2026-Q2 is partial: the window covers 1 of its 91 days")
    );
    assert_eq!(carelens_analytics::output::to_json(&r)["partial_periods"][0]["days"], 1);
    // Whole quarters are not partial.
    let r = kpi(&s, "incidence", Query { from: Some(d(2026, 1, 1)), to: Some(d(2026, 6, 30)), ..q(&[]) });
    assert!(r.partial.is_empty(), "{:?}", r.partial);
}

#[test]
fn vaccination_coverage_against_the_schedule() {
    let (_t, s) = snapshot();
    let r = kpi(&s, "vaccination_coverage", q(&[]));
    close(value(&r, &["hexavalent_3"], "value"), 0.5); // P18 of P18, P19
    close(value(&r, &["mmrv_1"], "value"), 0.0);
    close(value(&r, &["covid19_2"], "value"), 0.5); // P0–P8 of the 18 adults
    close(value(&r, &["covid19_2"], "denominator"), 18.0);
    // No one is 60 or older: an empty cohort is suppressed, not an error.
    assert!(cell(&r, &["influenza_1y"]).0);
}

#[test]
fn polypharmacy_and_therapy_continuity() {
    let (_t, s) = snapshot();
    let r = kpi(&s, "polypharmacy", q(&[]));
    close(value(&r, &[], "value"), 2.0 / 20.0); // P0 and P2; P1 stopped one
    let r = kpi(&s, "polypharmacy", q(&["age"]));
    close(value(&r, &["45-49"], "value"), 0.2);
    close(value(&r, &["25-29"], "value"), 0.0);
    let r = kpi(&s, "therapy_continuity", q(&[]));
    close(value(&r, &[], "value"), 0.5); // P10 weekly; P11 paused 35 days; P12 one session
    close(value(&r, &[], "denominator"), 2.0);
}

#[test]
fn booking_kpis() {
    let (_t, s) = snapshot();
    let r = kpi(&s, "no_show_rate", q(&["region"]));
    close(value(&r, &["Bayern"], "value"), 1.0 / 4.0);
    close(value(&r, &["Berlin"], "value"), 0.0);
    let r = kpi(&s, "no_show_rate", q(&["insurance"]));
    close(value(&r, &["statutory"], "value"), 1.0 / 6.0);
    let r = kpi(&s, "cancellation_rate", q(&["specialty"]));
    close(value(&r, &["cardiology"], "value"), 1.0 / 4.0);
    close(value(&r, &["general_practice"], "value"), 0.0);
    let r = kpi(&s, "repeat_visit_30d", q(&[]));
    close(value(&r, &[], "value"), 1.0 / 6.0);
    let r = kpi(&s, "waiting_time", q(&["region"]));
    // Not cancelled, start in window: waits 2, 9, 14, 28, 30, 30, 70.
    let all = kpi(&s, "waiting_time", Query { by: vec!["specialty".into()], ..q(&[]) });
    close(value(&all, &["cardiology"], "value"), 30.0); // 2, 30, 70
    close(value(&all, &["general_practice"], "value"), (14.0 + 28.0) / 2.0); // 9, 14, 28, 30
    // p90 of 9, 14, 28, 30 (linear): position 2.7 → 28 + 0.7 · 2.
    close(value(&all, &["general_practice"], "p90"), 29.4);
    close(value(&r, &["Berlin"], "mean"), 34.0);
    let r = kpi(&s, "waiting_time", q(&["insurance"]));
    close(value(&r, &["private"], "value"), 2.0);
    close(value(&r, &["statutory"], "value"), 29.0); // 9, 14, 28, 30, 30, 70
    // Utilisation: 4 of 21 Mondays × 12 slots; 3 of 21 Tuesdays × 2 slots (Jan–May 2026).
    let r = kpi(&s, "provider_utilisation", q(&[]));
    close(value(&r, &["general_practice"], "value"), 4.0 / 252.0);
    close(value(&r, &["cardiology"], "value"), 3.0 / 42.0);
}

#[test]
fn model_monitoring_kpis() {
    let (_t, s) = snapshot();
    let r = kpi(&s, "predicted_positive_rate", q(&[]));
    // Latest sets: P0 v2 (0.9), P1 (0.3), P10 (0.6) at threshold 0.5.
    close(value(&r, &["E11"], "value"), 2.0 / 3.0);
    close(value(&r, &["E11"], "recorded"), 2.0 / 3.0);
    close(value(&r, &["J18"], "value"), 1.0 / 3.0); // P0 v2 0.4 ≥ 0.3
    close(value(&r, &["J18"], "recorded"), 0.0);
    let r = kpi(&s, "confirmation_rate", q(&[]));
    close(value(&r, &["E11"], "value"), 0.5);
    close(value(&r, &["J18"], "value"), 0.0);
    let r = kpi(&s, "calibration_drift", q(&[]));
    // All four E11 predictions in 2026-Q2: mean 0.65; P0 (twice) and P1 have E11: 0.75.
    close(value(&r, &["E11", "2026-Q2"], "mean_predicted"), 0.65);
    close(value(&r, &["E11", "2026-Q2"], "observed"), 0.75);
    close(value(&r, &["E11", "2026-Q2"], "value"), 0.10);
    close(value(&r, &["J18", "2026-Q2"], "value"), -0.1875);
}

#[test]
fn small_cells_are_suppressed_and_marked_in_every_format() {
    let (_t, s) = snapshot();
    // k = 11: E11 has 5 cases in 20 persons → suppressed; by sex every cell is small.
    let r = run(&s, find("prevalence").unwrap(), &Query::default()).unwrap();
    assert_eq!(r.k, 11);
    let (suppressed, values) = cell(&r, &["E11"]);
    assert!(suppressed);
    assert!(values.iter().all(Option::is_none));
    let json = carelens_analytics::output::to_json(&r);
    let rows = json["rows"].as_array().unwrap();
    let e11 = rows.iter().find(|r| r["code"] == "E11").unwrap();
    assert_eq!(e11["suppressed"], true);
    assert!(e11["value"].is_null());
    let csv = carelens_analytics::output::to_csv(&r);
    assert!(csv.lines().any(|l| l.starts_with("E11,IV,,,,,,true")), "{csv}");
    let table = carelens_analytics::output::to_table(&r);
    assert!(table.lines().any(|l| l.starts_with("E11") && l.contains("suppressed")), "{table}");
    let df = carelens_analytics::output::to_frame(&r).unwrap();
    assert_eq!(df.column("suppressed").unwrap().bool().unwrap().sum(), Some(r.suppressed as u32));
    // Complementary suppression: with k = 3, P15 (the only private no-show denominator) is
    // small, so its statutory complement is suppressed too.
    let r = run(&s, find("no_show_rate").unwrap(), &Query { by: vec!["insurance".into()], k: 3, ..Query::default() })
        .unwrap();
    assert!(cell(&r, &["private"]).0);
    assert!(cell(&r, &["statutory"]).0);
    // The chart draws suppressed cells as such.
    let svg = carelens_analytics::chart::svg(&r);
    assert!(svg.contains("suppressed"), "{svg}");
}

#[test]
fn bad_queries_get_clear_errors() {
    let (tmp, s) = snapshot();
    let err = find("prevalance").err().unwrap().to_string();
    assert!(err.contains("unknown KPI `prevalance`") && err.contains("prevalence"), "{err}");
    let err = run(&s, find("prevalence").unwrap(), &q(&["specialty"])).unwrap_err().to_string();
    assert!(err.contains("cannot be stratified by `specialty`") && err.contains("age_band"), "{err}");
    let empty = Query { from: Some(d(2026, 5, 1)), to: Some(d(2026, 4, 1)), ..q(&[]) };
    let err = run(&s, find("no_show_rate").unwrap(), &empty).unwrap_err();
    assert!(matches!(err, AnalyticsError::EmptyRange { .. }), "{err}");
    // A snapshot from an older schema.
    let manifest = s.dir.join(MANIFEST);
    let text = std::fs::read_to_string(&manifest).unwrap();
    let old = tmp.path().join("old");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::write(
        old.join(MANIFEST),
        text.replace(
            &format!("\"schema_version\": {SCHEMA_VERSION}"),
            &format!("\"schema_version\": {}", SCHEMA_VERSION - 1),
        ),
    )
    .unwrap();
    let err = Snapshot::open(&old).err().unwrap().to_string();
    assert!(err.contains("older") && err.contains("carelens export analytics"), "{err}");
    // A missing partition.
    let first = s.manifest.tables["events"].files[0].path.clone();
    std::fs::remove_file(s.dir.join(&first)).unwrap();
    let err = Snapshot::open(&s.dir).err().unwrap().to_string();
    assert!(err.contains(&first) && err.contains("missing"), "{err}");
}

#[test]
fn snapshot_is_pseudonymised_and_partitioned() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("snap");
    let m = write(&dir);
    assert_eq!(m.tables["patients"].rows, 20);
    // Events by kind and year, one file per partition; the rest by year and month.
    let events: Vec<&str> = m.tables["events"].files.iter().map(|f| f.path.as_str()).collect();
    assert!(events.iter().all(|p| p.starts_with("events/kind=") && p.contains("/year=")), "{events:?}");
    assert!(events.contains(&"events/kind=diagnosis/year=2026/part-00000.parquet"), "{events:?}");
    assert!(events.iter().all(|p| p.ends_with("/part-00000.parquet")), "{events:?}");
    let appts = &m.tables["appointments"].files;
    assert!(appts.iter().any(|f| f.path.starts_with("appointments/year=2026/month=1/")), "{appts:?}");
    // No Health ID, name or birth date anywhere in the files.
    let f = fixture();
    for e in m.files() {
        let bytes = std::fs::read(dir.join(&e.path)).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for p in &f.people {
            assert!(!text.contains(p.patient.id.as_str()), "{} holds a Health ID", e.path);
            assert!(!text.contains(&p.patient.name.family), "{} holds a name", e.path);
        }
    }
    // Writing into a non-empty directory is refused.
    assert!(SnapshotWriter::create(&dir, d(2026, 6, 30), b"0123456789abcdef", false).is_err());
}

#[test]
fn the_catalogue_document_is_current() {
    let text = carelens_analytics::kpi::catalogue_markdown(d(2026, 10, 1));
    let path = std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("KPIS.md");
    if std::env::var_os("CARELENS_BLESS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == text,
        "{} is out of date: run CARELENS_BLESS=1 cargo test -p carelens-analytics",
        path.display()
    );
}
