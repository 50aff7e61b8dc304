use std::collections::{HashMap, HashSet};

use carelens_domain::{AppointmentStatus, Condition, HistoryKind, InsuranceKind, Sex, Specialty, Validate};

use super::*;

fn cfg(seed: u64, patients: u64, threads: usize) -> Config {
    Config { seed, patients, as_of: Config::default_as_of(), threads }
}

fn collect(cfg: &Config) -> (Summary, Chunk) {
    let mut all = Chunk::default();
    let summary = generate(cfg, |c: Chunk| {
        all.patients.extend(c.patients);
        all.history.extend(c.history);
        all.ground_truth.extend(c.ground_truth);
        all.appointments.extend(c.appointments);
        all.reviews.extend(c.reviews);
        // The final chunk repeats providers with ratings: keep the latest.
        if !c.providers.is_empty() {
            all.providers = c.providers;
        }
        all.schedule_rules.extend(c.schedule_rules);
        Ok::<_, ()>(())
    })
    .unwrap();
    (summary, all)
}

#[test]
fn same_seed_same_population_whatever_the_threads() {
    let (a, _) = collect(&cfg(7, 2500, 1));
    let (b, _) = collect(&cfg(7, 2500, 3));
    assert_eq!(a, b);
    let (c, _) = collect(&cfg(8, 2500, 2));
    assert_ne!(a.hash, c.hash);
    let mut later = cfg(7, 2500, 2);
    later.as_of = NaiveDate::from_ymd_opt(2027, 1, 1).unwrap();
    assert_ne!(collect(&later).0.hash, a.hash);
}

#[test]
fn hash_does_not_depend_on_chunking() {
    let config = cfg(11, 1200, 2);
    let hash = |chunk| generate_chunked(&config, chunk, |_| Ok::<_, ()>(())).unwrap().hash;
    let reference = hash(CHUNK_PATIENTS);
    assert_eq!(hash(7), reference);
    assert_eq!(hash(500), reference);
    assert_eq!(hash(1200), reference);
}

#[test]
fn sink_errors_stop_generation() {
    let mut calls = 0;
    let err = generate(&cfg(1, 5000, 2), |_| {
        calls += 1;
        if calls == 3 { Err("disk full") } else { Ok(()) }
    })
    .unwrap_err();
    assert_eq!((err, calls), ("disk full", 3));
}

#[test]
fn population_is_plausible_for_germany() {
    let config = cfg(42, 20_000, 2);
    let (s, pop) = collect(&config);
    let as_of = config.as_of;
    assert_eq!(s.patients, 20_000);
    assert_eq!(pop.patients.len(), 20_000);
    let n = pop.patients.len() as f64;

    // Every record is valid and every id unique.
    pop.patients.validate().unwrap();
    pop.history.validate().unwrap();
    pop.providers.validate().unwrap();
    pop.appointments.validate().unwrap();
    pop.reviews.validate().unwrap();
    pop.schedule_rules.validate().unwrap();
    assert_eq!(pop.patients.iter().map(|p| &p.id).collect::<HashSet<_>>().len(), pop.patients.len());
    assert_eq!(pop.history.iter().map(|e| e.id).collect::<HashSet<_>>().len(), pop.history.len());
    assert_eq!(pop.appointments.iter().map(|a| a.id).collect::<HashSet<_>>().len(), pop.appointments.len());
    assert!(pop.history.iter().all(|e| e.date <= as_of), "nothing after as_of");

    // Demography: sex ratio, old-age share, insurance split.
    let female = pop.patients.iter().filter(|p| p.sex == Sex::Female).count() as f64 / n;
    assert!((0.48..0.54).contains(&female), "female share {female}");
    let age = |p: &Patient| p.age_on(as_of);
    let over_65 = pop.patients.iter().filter(|p| age(p) >= 65).count() as f64 / n;
    assert!((0.18..0.27).contains(&over_65), "65+ share {over_65} (Germany ≈ 22 %)");
    let private = pop.patients.iter().filter(|p| p.insurance.kind == InsuranceKind::Private).count() as f64 / n;
    assert!((0.10..0.14).contains(&private), "private share {private} (Germany ≈ 12 %)");

    // Prevalence among adults.
    let adults: HashSet<_> = pop.patients.iter().filter(|p| age(p) >= 18).map(|p| p.id.clone()).collect();
    let prevalence = |c: Condition| {
        pop.ground_truth.iter().filter(|g| g.condition == c && adults.contains(&g.patient)).count() as f64
            / adults.len() as f64
    };
    let t2d = prevalence(Condition::Type2Diabetes);
    assert!((0.05..0.15).contains(&t2d), "adult T2D prevalence {t2d} (Germany ≈ 8-10 %)");
    let htn = prevalence(Condition::Hypertension);
    assert!((0.20..0.40).contains(&htn), "adult hypertension prevalence {htn} (Germany ≈ 30 %)");
    let dep = prevalence(Condition::Depression);
    assert!((0.05..0.13).contains(&dep), "adult depression {dep}");
    // Hypertension rises with age.
    let htn_in = |lo: u32, hi: u32| {
        let ids: HashSet<_> = pop.patients.iter().filter(|p| (lo..hi).contains(&age(p))).map(|p| &p.id).collect();
        pop.ground_truth.iter().filter(|g| g.condition == Condition::Hypertension && ids.contains(&g.patient)).count()
            as f64
            / ids.len() as f64
    };
    assert!(htn_in(70, 120) > 2.0 * htn_in(30, 50), "hypertension must rise with age");

    // Correlated evidence: diagnosed diabetics have HbA1c and metformin; pneumonia has an X-ray.
    let by_patient: HashMap<_, Vec<_>> = pop.history.iter().fold(HashMap::new(), |mut m, e| {
        m.entry(e.patient.clone()).or_insert_with(Vec::new).push(e);
        m
    });
    for g in pop.ground_truth.iter().filter(|g| g.condition == Condition::Type2Diabetes && g.diagnosed) {
        let h = &by_patient[&g.patient];
        assert!(h.iter().any(|e| matches!(&e.kind, HistoryKind::Diagnosis(d) if d.code.category() == "E11")));
        assert!(h.iter().any(|e| matches!(&e.kind, HistoryKind::Medication(m) if m.code.as_str() == "A10BA02")));
    }
    let mean_a1c = |diabetic: bool| {
        let ids: HashSet<_> =
            pop.ground_truth.iter().filter(|g| g.condition == Condition::Type2Diabetes).map(|g| &g.patient).collect();
        let v: Vec<f64> = pop
            .history
            .iter()
            .filter(|e| ids.contains(&e.patient) == diabetic)
            .filter_map(|e| match &e.kind {
                HistoryKind::Observation(o) if o.code.as_str() == "2345-7" => Some(o.value),
                _ => None,
            })
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    assert!(mean_a1c(true) > mean_a1c(false) + 30.0, "diabetics' glucose must be higher");
    for g in pop.ground_truth.iter().filter(|g| g.condition == Condition::Pneumonia) {
        assert!(by_patient[&g.patient].iter().any(|e| matches!(&e.kind, HistoryKind::ImagingStudy(_))));
    }
    // Children get vaccinated.
    let vaccinated_kids = pop
        .patients
        .iter()
        .filter(|p| (3..10).contains(&age(p)))
        .filter(|p| {
            by_patient.get(&p.id).is_some_and(|h| h.iter().any(|e| matches!(e.kind, HistoryKind::Vaccination(_))))
        })
        .count() as f64
        / pop.patients.iter().filter(|p| (3..10).contains(&age(p))).count() as f64;
    assert!(vaccinated_kids > 0.9, "childhood vaccination coverage {vaccinated_kids}");

    // Providers: every specialty exists.
    let specialties: HashSet<_> = pop.providers.iter().map(|p| p.specialty).collect();
    assert_eq!(specialties.len(), Specialty::ALL.len());
    assert!(pop.providers.iter().any(|p| p.rating.count > 0));

    // Appointments: one per slot, ~10 % no-shows among past ones, private patients wait less.
    let slots: HashSet<_> = pop.appointments.iter().map(|a| (&a.provider, a.start)).collect();
    assert_eq!(slots.len(), pop.appointments.len(), "no slot is booked twice");
    let past: Vec<_> = pop.appointments.iter().filter(|a| a.start.date_naive() <= as_of).collect();
    let no_show = past.iter().filter(|a| a.status == AppointmentStatus::NoShow).count() as f64 / past.len() as f64;
    assert!((0.07..0.13).contains(&no_show), "no-show rate {no_show}");
    assert!(pop.appointments.iter().any(|a| a.status == AppointmentStatus::Booked && a.start.date_naive() > as_of));
    let insurance: HashMap<_, _> = pop.patients.iter().map(|p| (&p.id, p.insurance.kind)).collect();
    let median_wait = |kind: InsuranceKind| {
        let mut w: Vec<i64> = past
            .iter()
            .filter(|a| insurance[&a.patient] == kind && a.visit_type == carelens_domain::VisitType::FirstVisit)
            .map(|a| a.waiting_days())
            .collect();
        w.sort_unstable();
        w[w.len() / 2]
    };
    let (statutory, private) = (median_wait(InsuranceKind::Statutory), median_wait(InsuranceKind::Private));
    assert!(statutory > private, "statutory median wait {statutory} d should exceed private {private} d");

    // Reviews only from patients with a completed appointment at that provider.
    let completed: HashSet<_> = pop
        .appointments
        .iter()
        .filter(|a| a.status == AppointmentStatus::Completed)
        .map(|a| (&a.patient, &a.provider))
        .collect();
    assert!(!pop.reviews.is_empty());
    assert!(pop.reviews.iter().all(|r| r.verified_visit && completed.contains(&(&r.patient, &r.provider))));
}
