//! One synthetic patient: demographics, risk factors, disease modules with correlated
//! evidence (labs, medication, imaging, therapy), vaccinations, allergies and visit requests.
//!
//! Everything for patient `i` comes from its own random stream, so patients can be generated
//! in any order and on any number of threads with the same result.

use carelens_domain::{
    Allergy, AllergySeverity, AtcCode, BodyPart, ClinicalStatus, Condition, Diagnosis, Dose, EntryId, GeoPoint,
    GroundTruth, HealthId, HistoryEntry, HistoryKind, ImagingStudy, Insurance, InsuranceKind, MedicationStatement,
    Modality, Observation, Patient, PersonName, Procedure, ProcedureKind, Residence, Sex, Source, Specialty,
    TherapyModality, TherapySession, Vaccination, VaccineCode, VisitType,
};
use chrono::{Datelike, Days, Months, NaiveDate};

use crate::Config;
use crate::rng::{Rng, mix, permute50};
use crate::tables::{
    AGE_BANDS_K, CITIES, FAMILY_NAMES, FEMALE_NAMES, MALE_NAMES, PRIVATE_INSURERS, STATUTORY_INSURERS, female_share,
};

/// How far back detailed histories (labs, visits) go; diagnoses keep their true onset.
const HISTORY_YEARS: u32 = 10;
/// Appointments are generated for this many days before `as_of` …
pub const BOOKING_PAST_DAYS: u64 = 730;
/// … and booked up to this many days ahead.
pub const BOOKING_FUTURE_DAYS: u64 = 60;

/// What the appointment phase needs to know about a visit the history implies.
#[derive(Debug, Clone)]
pub struct VisitRequest {
    pub specialty: Specialty,
    pub day: NaiveDate,
    pub visit_type: VisitType,
    /// Rolled here so that slotting in the collector stays deterministic.
    pub roll: u64,
}

#[derive(Debug, Clone)]
pub struct PatientBundle {
    pub index: u64,
    pub patient: Patient,
    pub history: Vec<HistoryEntry>,
    pub truth: Vec<GroundTruth>,
    pub visits: Vec<VisitRequest>,
    pub city: usize,
}

struct Ctx<'a> {
    cfg: &'a Config,
    rng: Rng,
    id: HealthId,
    index: u64,
    birth: NaiveDate,
    sex: Sex,
    entries: Vec<HistoryEntry>,
    truth: Vec<GroundTruth>,
    visits: Vec<VisitRequest>,
    id_base: u128,
}

fn date_from_days(days: i32) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(days).unwrap_or(NaiveDate::MIN)
}

impl Ctx<'_> {
    fn as_of(&self) -> NaiveDate {
        self.cfg.as_of
    }

    fn age(&self) -> u32 {
        self.as_of().years_since(self.birth).unwrap_or(0)
    }

    fn date_at_age(&self, years: f64) -> NaiveDate {
        let d = self.birth + Days::new((years.max(0.0) * 365.25) as u64);
        d.min(self.as_of())
    }

    fn history_start(&self) -> NaiveDate {
        let ten = self.as_of().checked_sub_months(Months::new(12 * HISTORY_YEARS)).unwrap_or(self.birth);
        ten.max(self.birth)
    }

    /// Uniform date in [a, b].
    fn date_between(&mut self, a: NaiveDate, b: NaiveDate) -> NaiveDate {
        let (a, b) = (a.num_days_from_ce(), b.num_days_from_ce().max(a.num_days_from_ce()));
        date_from_days(self.rng.range(i64::from(a), i64::from(b)) as i32)
    }

    fn push(&mut self, date: NaiveDate, kind: HistoryKind) {
        // Nothing is recorded before birth or after the generation date.
        if date > self.as_of() || date < self.birth {
            return;
        }
        let n = self.entries.len() as u128;
        let id = EntryId::from_u128(self.id_base | (u128::from(self.index) << 20) | n);
        match HistoryEntry::new(id, self.id.clone(), date, Source::synthetic(), kind) {
            Ok(e) => self.entries.push(e),
            // The generator only builds valid values; a bug here should fail tests loudly.
            Err(e) => panic!("generator built an invalid entry: {e}"),
        }
    }

    fn dx(&mut self, date: NaiveDate, code: &str, display: &str, status: ClinicalStatus) {
        let code = code.parse().unwrap_or_else(|e| panic!("static ICD-10 {code}: {e}"));
        self.push(date, HistoryKind::Diagnosis(Diagnosis { code, display: display.into(), status }));
    }

    fn obs(&mut self, date: NaiveDate, loinc: &str, value: f64) {
        // Questionnaire scores are whole numbers; measurements keep one decimal.
        let value = if matches!(loinc, "44261-6" | "70274-6") { value.round() } else { (value * 10.0).round() / 10.0 };
        match Observation::catalogued(loinc, value) {
            Ok(o) => self.push(date, HistoryKind::Observation(o)),
            Err(e) => panic!("generator built an invalid observation {loinc}: {e}"),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn med(
        &self,
        atc: &str,
        display: &str,
        amount: f64,
        unit: &str,
        freq: &str,
        start: NaiveDate,
        end: Option<NaiveDate>,
    ) -> MedicationStatement {
        MedicationStatement {
            code: atc.parse::<AtcCode>().unwrap_or_else(|e| panic!("static ATC {atc}: {e}")),
            display: display.into(),
            dose: Dose { amount, unit: unit.into(), frequency: freq.into() },
            start,
            end,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn medication(
        &mut self,
        atc: &str,
        display: &str,
        amount: f64,
        unit: &str,
        freq: &str,
        start: NaiveDate,
        end: Option<NaiveDate>,
    ) {
        let m = self.med(atc, display, amount, unit, freq, start, end);
        self.push(start, HistoryKind::Medication(m));
    }

    fn procedure(&mut self, date: NaiveDate, kind: ProcedureKind, ops_code: &str, display: &str) {
        let procedure = Procedure { kind, ops_code: Some(ops_code.into()), display: display.into() };
        self.push(date, HistoryKind::Procedure(procedure));
    }

    fn imaging(&mut self, date: NaiveDate, modality: Modality, body_part: BodyPart, description: &str) {
        let uid =
            format!("2.25.{}", u128::from(mix(&[self.cfg.seed, self.index, self.entries.len() as u64])) << 32 | 1);
        self.push(
            date,
            HistoryKind::ImagingStudy(ImagingStudy {
                modality,
                body_part,
                study_uid: Some(uid),
                description: description.into(),
                object_keys: vec![],
                instances: vec![],
            }),
        );
    }

    fn truth(&mut self, condition: Condition, onset: NaiveDate, diagnosed: bool) {
        self.truth.push(GroundTruth { patient: self.id.clone(), condition, onset, diagnosed });
    }

    /// A visit, if it falls inside the booking window.
    fn visit(&mut self, specialty: Specialty, day: NaiveDate, visit_type: VisitType) {
        let from = self.as_of() - Days::new(BOOKING_PAST_DAYS);
        if day >= from && day <= self.as_of() {
            let roll = self.rng.next_u64();
            self.visits.push(VisitRequest { specialty, day, visit_type, roll });
        }
    }

    /// Dates every `months` from `start` (inclusive) to `as_of`, within the history window.
    fn follow_ups(&mut self, start: NaiveDate, months: u32) -> Vec<NaiveDate> {
        let mut out = Vec::new();
        let mut d = start;
        let from = self.history_start();
        while d <= self.as_of() {
            if d >= from {
                let jitter = self.rng.range(0, 20) as u64;
                out.push((d + Days::new(jitter)).min(self.as_of()));
            }
            d = match d.checked_add_months(Months::new(months)) {
                Some(n) => n,
                None => break,
            };
        }
        out
    }
}

/// Probability by age band edges: `table` is (min_age, p) sorted by age.
fn by_age(age: u32, table: &[(u32, f64)]) -> f64 {
    table.iter().rev().find(|(min, _)| age >= *min).map_or(0.0, |(_, p)| *p)
}

pub fn generate(cfg: &Config, index: u64) -> PatientBundle {
    let mut rng = Rng::new(cfg.seed, index, 0xBA5E);
    // Demographics.
    let band = rng.weighted(&AGE_BANDS_K);
    let age_years = band as u32 * 5 + rng.range(0, 4) as u32;
    let female = rng.chance(female_share(age_years));
    let sex = if rng.chance(0.0002) {
        Sex::Diverse
    } else if female {
        Sex::Female
    } else {
        Sex::Male
    };
    let birth = cfg
        .as_of
        .checked_sub_months(Months::new(12 * age_years))
        .and_then(|d| d.checked_sub_days(Days::new(rng.range(1, 364) as u64)))
        .unwrap_or(cfg.as_of);
    let city = rng.weighted(&CITIES.iter().map(|c| c.population_k).collect::<Vec<_>>());
    let c = &CITIES[city];
    let given = if female { rng.pick(FEMALE_NAMES) } else { rng.pick(MALE_NAMES) };
    let family = rng.pick(FAMILY_NAMES);
    // ~12 % private: civil servants, self-employed and high earners (with their families).
    let private = rng.chance(if (25..67).contains(&age_years) { 0.125 } else { 0.11 });
    let (kind, insurers) = if private {
        (InsuranceKind::Private, PRIVATE_INSURERS)
    } else {
        (InsuranceKind::Statutory, STATUTORY_INSURERS)
    };
    let insurer = insurers[rng.weighted(&insurers.iter().map(|i| i.2).collect::<Vec<_>>())].1;
    let location = GeoPoint::new(c.lat + rng.uniform(-0.03, 0.03), c.lon + rng.uniform(-0.05, 0.05))
        .unwrap_or_else(|_| unreachable!("jitter stays within range"));
    let id = HealthId::from_number(permute50(cfg.seed, index));
    let patient = Patient {
        id: id.clone(),
        name: PersonName { given: (*given).into(), family: (*family).into() },
        birth_date: birth,
        sex,
        residence: Residence {
            region: c.region.into(),
            city: c.name.into(),
            postcode: format!("{:05}", c.postcode + rng.range(0, 40) as u32),
            location,
        },
        insurance: Insurance { kind, insurer_id: insurer.into() },
    };

    let mut ctx = Ctx {
        cfg,
        rng,
        id,
        index,
        birth,
        sex,
        entries: Vec::new(),
        truth: Vec::new(),
        visits: Vec::new(),
        id_base: u128::from(mix(&[cfg.seed, 0xE17])) << 64,
    };
    modules(&mut ctx);
    ctx.entries.sort_by_key(|a| (a.date, a.id));
    PatientBundle { index, patient, history: ctx.entries, truth: ctx.truth, visits: ctx.visits, city }
}

fn modules(ctx: &mut Ctx<'_>) {
    let age = ctx.age();
    let female = ctx.sex == Sex::Female;
    let male = ctx.sex == Sex::Male;

    // Latent risk factors.
    let bmi = if age < 18 {
        ctx.rng.normal_in(18.0 + f64::from(age) * 0.25, 2.5, 13.0, 35.0)
    } else {
        ctx.rng.normal_in(24.5 + (f64::from(age.min(70)) - 20.0) * 0.06, 4.5, 16.0, 55.0)
    };
    let smoker = age >= 16 && ctx.rng.chance(if male { 0.27 } else { 0.20 });
    let obesity = |k: f64| (k * (bmi - 27.0)).exp();

    // Type 2 diabetes.
    let p_t2d = by_age(age, &[(18, 0.004), (30, 0.012), (40, 0.035), (50, 0.07), (60, 0.13), (70, 0.19), (80, 0.21)])
        * obesity(0.09)
        * if male { 1.15 } else { 0.9 };
    let t2d = ctx.rng.chance(p_t2d.min(0.6));
    // Hypertension.
    let p_htn = by_age(age, &[(18, 0.03), (30, 0.08), (40, 0.18), (50, 0.32), (60, 0.48), (70, 0.62), (80, 0.70)])
        * obesity(0.04)
        * if t2d { 1.5 } else { 1.0 };
    let htn = ctx.rng.chance(p_htn.min(0.95));
    // Coronary heart disease.
    let p_chd = by_age(age, &[(40, 0.01), (50, 0.03), (60, 0.065), (70, 0.12), (80, 0.17)])
        * if male { 1.6 } else { 0.7 }
        * if smoker { 1.5 } else { 1.0 }
        * if t2d { 1.7 } else { 1.0 }
        * if htn { 1.4 } else { 1.0 };
    let chd = ctx.rng.chance(p_chd.min(0.7));
    // Chronic kidney disease.
    let p_ckd = by_age(age, &[(40, 0.015), (60, 0.045), (70, 0.09), (80, 0.16)])
        * if t2d { 2.0 } else { 1.0 }
        * if htn { 1.6 } else { 1.0 };
    let ckd = ctx.rng.chance(p_ckd.min(0.7));
    let asthma = ctx.rng.chance(if age < 18 { 0.09 } else { 0.06 });
    let p_copd = by_age(age, &[(40, if smoker { 0.07 } else { 0.01 }), (60, if smoker { 0.17 } else { 0.03 })]);
    let copd = ctx.rng.chance(p_copd);
    let p_dep = if age >= 15 {
        if female { 0.11 } else { 0.06 }
    } else if age >= 10 {
        0.02
    } else {
        0.0
    };
    let depression = ctx.rng.chance(p_dep);
    let p_anx = if age >= 12 { if female { 0.075 } else { 0.04 } } else { 0.0 } * if depression { 2.2 } else { 1.0 };
    let anxiety = ctx.rng.chance(p_anx);

    if t2d {
        diabetes(ctx, age);
    }
    if htn {
        hypertension(ctx, age);
    }
    if chd {
        coronary(ctx, age);
    }
    if ckd {
        kidney(ctx, age, t2d);
    }
    if asthma {
        asthma_module(ctx, age);
    }
    if copd {
        copd_module(ctx, age);
    }
    if depression {
        mental(ctx, age, Condition::Depression);
    }
    if anxiety {
        mental(ctx, age, Condition::Anxiety);
    }
    pneumonia(ctx, age, copd);
    if female && (16..=47).contains(&age) {
        pregnancy(ctx, age);
    }
    fracture(ctx, age, female);
    checkups(ctx, age, t2d, htn, chd, ckd, bmi);
    incidental_imaging(ctx);
    vaccinations(ctx, age);
    allergies(ctx);
    if ctx.rng.chance(0.25) {
        // Acute GP visits (infections, back pain, …) that leave no coded trace here.
        let n = ctx.rng.poisson(1.2);
        for _ in 0..n {
            let from = ctx.as_of() - Days::new(BOOKING_PAST_DAYS);
            let day = ctx.date_between(from, ctx.as_of());
            let sp = if age < 18 { Specialty::Paediatrics } else { Specialty::GeneralPractice };
            ctx.visit(sp, day, VisitType::Acute);
        }
    }
}

fn onset_between(ctx: &mut Ctx<'_>, min_age: f64, age: u32) -> NaiveDate {
    let max_age = f64::from(age) + 0.99;
    let a = ctx.rng.uniform(min_age.min(max_age), max_age);
    ctx.date_at_age(a)
}

fn gp(ctx: &Ctx<'_>) -> Specialty {
    if ctx.age() < 18 { Specialty::Paediatrics } else { Specialty::GeneralPractice }
}

fn diabetes(ctx: &mut Ctx<'_>, age: u32) {
    let onset = onset_between(ctx, 30.0_f64.min(f64::from(age)), age);
    let diagnosed = ctx.rng.chance(0.8);
    ctx.truth(Condition::Type2Diabetes, onset, diagnosed);
    let sp = gp(ctx);
    if diagnosed {
        let dx_date = (onset + Days::new(ctx.rng.range(0, 300) as u64)).min(ctx.as_of());
        ctx.dx(dx_date, "E11.9", "Type 2 diabetes mellitus without complications", ClinicalStatus::Active);
        ctx.medication("A10BA02", "Metformin", 1000.0, "mg", "1-0-1", dx_date, None);
        if ctx.rng.chance(0.2) {
            ctx.medication("A10BK01", "Dapagliflozin", 10.0, "mg", "1-0-0", dx_date + Days::new(400), None);
        }
        for d in ctx.follow_ups(dx_date, 6) {
            let a1c = ctx.rng.normal_in(7.3, 0.8, 6.0, 11.5);
            ctx.obs(d, "4548-4", a1c);
            let glucose = ctx.rng.normal_in(145.0, 25.0, 100.0, 300.0);
            ctx.obs(d, "2345-7", glucose);
            ctx.visit(sp, d, VisitType::FollowUp);
        }
        let internal = Specialty::InternalMedicine;
        ctx.visit(internal, dx_date, VisitType::FirstVisit);
    } else {
        // Undiagnosed: only what routine labs happened to catch.
        let from = onset.max(ctx.history_start());
        if ctx.rng.chance(0.6) && from < ctx.as_of() {
            let d = ctx.date_between(from, ctx.as_of());
            let a1c = ctx.rng.normal_in(6.6, 0.4, 5.9, 8.0);
            ctx.obs(d, "4548-4", a1c);
            let g = ctx.rng.normal_in(122.0, 12.0, 100.0, 160.0);
            ctx.obs(d, "2345-7", g);
        }
    }
}

fn hypertension(ctx: &mut Ctx<'_>, age: u32) {
    let onset = onset_between(ctx, 25.0_f64.min(f64::from(age)), age);
    let diagnosed = ctx.rng.chance(0.7);
    ctx.truth(Condition::Hypertension, onset, diagnosed);
    let sp = gp(ctx);
    let from = onset.max(ctx.history_start());
    if diagnosed {
        let dx_date = (onset + Days::new(ctx.rng.range(0, 200) as u64)).min(ctx.as_of());
        ctx.dx(dx_date, "I10", "Essential (primary) hypertension", ClinicalStatus::Active);
        if ctx.rng.chance(0.5) {
            ctx.medication("C09AA05", "Ramipril", 5.0, "mg", "1-0-0", dx_date, None);
        } else {
            ctx.medication("C08CA01", "Amlodipine", 5.0, "mg", "1-0-0", dx_date, None);
        }
        for d in ctx.follow_ups(dx_date.max(from), 6) {
            let s = ctx.rng.normal_in(138.0, 10.0, 110.0, 190.0);
            let di = ctx.rng.normal_in(86.0, 7.0, 60.0, 120.0);
            ctx.obs(d, "8480-6", s);
            ctx.obs(d, "8462-4", di);
            ctx.visit(sp, d, VisitType::FollowUp);
        }
    } else if from < ctx.as_of() {
        let n = ctx.rng.range(0, 2);
        for _ in 0..n {
            let d = ctx.date_between(from, ctx.as_of());
            let s = ctx.rng.normal_in(150.0, 10.0, 135.0, 190.0);
            let di = ctx.rng.normal_in(93.0, 6.0, 80.0, 120.0);
            ctx.obs(d, "8480-6", s);
            ctx.obs(d, "8462-4", di);
        }
    }
}

fn coronary(ctx: &mut Ctx<'_>, age: u32) {
    let onset = onset_between(ctx, 40.0_f64.min(f64::from(age)), age);
    ctx.truth(Condition::CoronaryHeartDisease, onset, true);
    ctx.dx(onset, "I25.10", "Atherosclerotic heart disease", ClinicalStatus::Active);
    ctx.medication("B01AC06", "Acetylsalicylic acid", 100.0, "mg", "1-0-0", onset, None);
    ctx.medication("C10AA05", "Atorvastatin", 40.0, "mg", "0-0-1", onset, None);
    if ctx.rng.chance(0.35) {
        ctx.procedure(onset, ProcedureKind::Surgery, "8-837", "Percutaneous coronary intervention with stent");
        let t = ctx.rng.normal_in(2.0, 1.5, 0.1, 20.0);
        ctx.obs(onset, "10839-9", t);
    }
    ctx.visit(Specialty::Cardiology, onset, VisitType::FirstVisit);
    for d in ctx.follow_ups(onset, 12) {
        let ldl = ctx.rng.normal_in(95.0, 25.0, 40.0, 250.0);
        ctx.obs(d, "2089-1", ldl);
        let hdl = ctx.rng.normal_in(42.0, 8.0, 20.0, 90.0);
        ctx.obs(d, "2085-9", hdl);
        ctx.visit(Specialty::Cardiology, d, VisitType::FollowUp);
    }
}

fn kidney(ctx: &mut Ctx<'_>, age: u32, t2d: bool) {
    let onset = onset_between(ctx, 45.0_f64.min(f64::from(age)), age);
    let diagnosed = ctx.rng.chance(0.6);
    ctx.truth(Condition::ChronicKidneyDisease, onset, diagnosed);
    if diagnosed {
        ctx.dx(onset, "N18.3", "Chronic kidney disease, stage 3", ClinicalStatus::Active);
        ctx.visit(Specialty::Nephrology, onset, VisitType::FirstVisit);
    }
    let from = onset.max(ctx.history_start());
    for d in ctx.follow_ups(from, if t2d { 6 } else { 12 }) {
        let egfr = ctx.rng.normal_in(45.0, 8.0, 15.0, 59.0);
        let creat = (1.9 * 45.0 / egfr * ctx.rng.normal_in(1.0, 0.08, 0.8, 1.2)).clamp(1.1, 6.0);
        ctx.obs(d, "33914-3", egfr);
        ctx.obs(d, "2160-0", creat);
    }
}

fn asthma_module(ctx: &mut Ctx<'_>, age: u32) {
    let onset = onset_between(ctx, 3.0_f64.min(f64::from(age)), age.min(30));
    ctx.truth(Condition::Asthma, onset, true);
    ctx.dx(onset, "J45.9", "Asthma, unspecified", ClinicalStatus::Active);
    ctx.medication("R03AC02", "Salbutamol inhaler", 100.0, "ug", "as needed", onset, None);
    if ctx.rng.chance(0.5) {
        ctx.medication("R03BA02", "Budesonide inhaler", 200.0, "ug", "1-0-1", onset, None);
    }
    let from = onset.max(ctx.history_start());
    for d in ctx.follow_ups(from, 24) {
        let r = ctx.rng.normal_in(72.0, 5.0, 60.0, 85.0);
        ctx.obs(d, "19926-5", r);
        ctx.visit(if age < 18 { Specialty::Paediatrics } else { Specialty::Pneumology }, d, VisitType::FollowUp);
    }
}

fn copd_module(ctx: &mut Ctx<'_>, age: u32) {
    let onset = onset_between(ctx, 45.0_f64.min(f64::from(age)), age);
    ctx.truth(Condition::Copd, onset, true);
    ctx.dx(onset, "J44.9", "Chronic obstructive pulmonary disease, unspecified", ClinicalStatus::Active);
    ctx.medication("R03BB04", "Tiotropium inhaler", 18.0, "ug", "1-0-0", onset, None);
    for d in ctx.follow_ups(onset, 12) {
        let r = ctx.rng.normal_in(58.0, 7.0, 30.0, 69.0);
        ctx.obs(d, "19926-5", r);
        ctx.visit(Specialty::Pneumology, d, VisitType::FollowUp);
    }
}

fn mental(ctx: &mut Ctx<'_>, age: u32, condition: Condition) {
    let onset = onset_between(ctx, 14.0_f64.min(f64::from(age)), age);
    let diagnosed = ctx.rng.chance(0.75);
    ctx.truth(condition, onset, diagnosed);
    if !diagnosed {
        return;
    }
    let (code, display, loinc, score_mean, atc, drug, dose) = match condition {
        Condition::Depression => {
            ("F32.1", "Moderate depressive episode", "44261-6", 15.0, "N06AB06", "Sertraline", 50.0)
        }
        _ => ("F41.1", "Generalized anxiety disorder", "70274-6", 13.0, "N06AB10", "Escitalopram", 10.0),
    };
    let max_score = if loinc == "44261-6" { 27.0 } else { 21.0 };
    let status = if ctx.rng.chance(0.5) { ClinicalStatus::Active } else { ClinicalStatus::Resolved };
    ctx.dx(onset, code, display, status);
    let s = ctx.rng.normal_in(score_mean, 3.0, 10.0, max_score);
    ctx.obs(onset, loinc, s);
    ctx.visit(Specialty::Psychiatry, onset, VisitType::FirstVisit);
    if ctx.rng.chance(0.55) {
        let end = if ctx.rng.chance(0.5) { Some(onset + Days::new(ctx.rng.range(180, 540) as u64)) } else { None };
        let end = end.filter(|e| *e < ctx.as_of());
        let m = ctx.med(atc, drug, dose, "mg", "1-0-0", onset, end);
        ctx.push(onset, HistoryKind::PsychiatricMedication(m));
    }
    if ctx.rng.chance(0.7) {
        // Psychotherapy starts after the usual wait and runs weekly.
        let modality = *ctx.rng.pick(&[
            TherapyModality::CognitiveBehavioural,
            TherapyModality::CognitiveBehavioural,
            TherapyModality::Psychodynamic,
            TherapyModality::Systemic,
            TherapyModality::Group,
        ]);
        let start = onset + Days::new(ctx.rng.range(20, 140) as u64);
        let n = ctx.rng.range(8, 25) as u64;
        let minutes = if modality == TherapyModality::Group { 100 } else { 50 };
        for k in 0..n {
            let d = start + Days::new(7 * k + ctx.rng.range(0, 2) as u64);
            if d > ctx.as_of() || d < ctx.history_start() {
                continue;
            }
            ctx.push(d, HistoryKind::TherapySession(TherapySession { modality, duration_minutes: minutes }));
            ctx.visit(Specialty::Psychotherapy, d, VisitType::FollowUp);
        }
        let later = (onset + Days::new(200)).min(ctx.as_of());
        let s2 = ctx.rng.normal_in(score_mean - 6.0, 3.0, 0.0, max_score);
        ctx.obs(later, loinc, s2);
    }
}

fn pneumonia(ctx: &mut Ctx<'_>, age: u32, copd: bool) {
    let yearly = by_age(age, &[(0, 0.02), (5, 0.004), (60, 0.012), (80, 0.03)]) * if copd { 1.8 } else { 1.0 };
    let window_start = ctx.as_of().checked_sub_months(Months::new(36)).unwrap_or(ctx.birth).max(ctx.birth);
    let mut latest = None;
    for _ in 0..3 {
        if ctx.rng.chance(yearly) {
            let d = ctx.date_between(window_start, ctx.as_of());
            latest = Some(latest.map_or(d, |l: NaiveDate| l.max(d)));
            ctx.dx(d, "J18.9", "Pneumonia, unspecified organism", ClinicalStatus::Resolved);
            let crp = ctx.rng.normal_in(110.0, 50.0, 25.0, 400.0);
            let wbc = ctx.rng.normal_in(14.5, 3.0, 10.5, 30.0);
            ctx.obs(d, "1988-5", crp);
            ctx.obs(d, "6690-2", wbc);
            ctx.imaging(d, Modality::XRay, BodyPart::Chest, "Chest X-ray PA: consolidation");
            ctx.medication("J01CA04", "Amoxicillin", 1000.0, "mg", "1-1-1", d, Some(d + Days::new(7)));
            let sp = gp(ctx);
            ctx.visit(sp, d, VisitType::Acute);
            ctx.visit(Specialty::Radiology, d, VisitType::Acute);
        }
    }
    if let Some(d) = latest {
        ctx.truth(Condition::Pneumonia, d, true);
    }
}

fn pregnancy(ctx: &mut Ctx<'_>, age: u32) {
    let p_birth = by_age(age, &[(16, 0.015), (20, 0.05), (25, 0.09), (30, 0.11), (35, 0.06), (40, 0.015), (45, 0.002)]);
    let window_start = ctx.as_of().checked_sub_months(Months::new(36)).unwrap_or(ctx.birth);
    if ctx.rng.chance(p_birth * 3.0) {
        // A birth in the last three years.
        let birth_day = ctx.date_between(window_start + Days::new(270), ctx.as_of());
        let conception = birth_day - Days::new(270);
        ctx.truth(Condition::Pregnancy, conception, true);
        ctx.dx(conception + Days::new(56), "Z34.9", "Supervision of normal pregnancy", ClinicalStatus::Resolved);
        for k in [60u64, 140, 220] {
            let hb = ctx.rng.normal_in(11.8, 0.9, 8.5, 15.0);
            ctx.obs(conception + Days::new(k), "718-7", hb);
            ctx.visit(Specialty::Gynaecology, conception + Days::new(k), VisitType::Checkup);
        }
        let caesarean = ctx.rng.chance(0.3);
        ctx.dx(birth_day, if caesarean { "O82" } else { "O80" }, "Delivery", ClinicalStatus::Resolved);
        ctx.procedure(
            birth_day,
            ProcedureKind::Childbirth,
            if caesarean { "5-749" } else { "9-260" },
            if caesarean { "Caesarean section" } else { "Spontaneous vaginal delivery" },
        );
    } else if ctx.rng.chance(p_birth * 0.75) {
        // Pregnant now.
        let conception = ctx.as_of() - Days::new(ctx.rng.range(40, 260) as u64);
        ctx.truth(Condition::Pregnancy, conception, true);
        ctx.dx(conception + Days::new(40), "Z34.9", "Supervision of normal pregnancy", ClinicalStatus::Active);
        let hb = ctx.rng.normal_in(11.9, 0.9, 8.5, 15.0);
        ctx.obs(conception + Days::new(40), "718-7", hb);
        ctx.visit(Specialty::Gynaecology, conception + Days::new(40), VisitType::Checkup);
    }
}

fn fracture(ctx: &mut Ctx<'_>, age: u32, female: bool) {
    let yearly = match age {
        0..=17 => 0.015,
        18..=64 => 0.008,
        65..=79 => {
            if female {
                0.02
            } else {
                0.01
            }
        }
        _ => {
            if female {
                0.035
            } else {
                0.018
            }
        }
    };
    let window_start = ctx.as_of().checked_sub_months(Months::new(60)).unwrap_or(ctx.birth).max(ctx.birth);
    let mut latest = None;
    for _ in 0..5 {
        if !ctx.rng.chance(yearly) {
            continue;
        }
        let d = ctx.date_between(window_start, ctx.as_of());
        latest = Some(latest.map_or(d, |l: NaiveDate| l.max(d)));
        let hip = age >= 70 && ctx.rng.chance(0.45);
        if hip {
            ctx.dx(d, "S72.00", "Fracture of neck of femur", ClinicalStatus::Resolved);
            ctx.imaging(d, Modality::XRay, BodyPart::Hip, "X-ray pelvis/hip: femoral neck fracture");
            ctx.procedure(d, ProcedureKind::Surgery, "5-820", "Hip arthroplasty");
        } else if ctx.rng.chance(0.6) {
            ctx.dx(d, "S52.50", "Fracture of lower end of radius", ClinicalStatus::Resolved);
            ctx.imaging(d, Modality::XRay, BodyPart::Wrist, "X-ray wrist: distal radius fracture");
            ctx.procedure(d, ProcedureKind::Procedure, "8-310", "Cast immobilisation");
        } else {
            ctx.dx(d, "S82.60", "Fracture of lateral malleolus", ClinicalStatus::Resolved);
            ctx.imaging(d, Modality::XRay, BodyPart::Foot, "X-ray ankle: lateral malleolus fracture");
        }
        ctx.visit(Specialty::Orthopaedics, d, VisitType::Acute);
        ctx.visit(Specialty::Radiology, d, VisitType::Acute);
    }
    if let Some(d) = latest {
        ctx.truth(Condition::Fracture, d, true);
    }
}

/// Check-up 35 (every three years from 35) and occasional labs: the normal values that give
/// models their negatives.
#[allow(clippy::too_many_arguments)]
fn checkups(ctx: &mut Ctx<'_>, age: u32, t2d: bool, htn: bool, chd: bool, ckd: bool, bmi: f64) {
    if age < 18 {
        return;
    }
    let every = if age >= 35 { 3 } else { 6 };
    let start = ctx.history_start() + Days::new(ctx.rng.range(0, 900) as u64);
    let sp = Specialty::GeneralPractice;
    for d in ctx.follow_ups(start, 12 * every) {
        if !ctx.rng.chance(0.55) {
            continue;
        }
        let measured_bmi = bmi + ctx.rng.normal(0.0, 0.5);
        ctx.obs(d, "39156-5", measured_bmi);
        if !htn {
            let s = ctx.rng.normal_in(122.0, 9.0, 95.0, 139.0);
            let di = ctx.rng.normal_in(78.0, 6.0, 60.0, 89.0);
            ctx.obs(d, "8480-6", s);
            ctx.obs(d, "8462-4", di);
        }
        if !t2d {
            let g = ctx.rng.normal_in(90.0, 8.0, 70.0, 109.0);
            ctx.obs(d, "2345-7", g);
        }
        if !chd {
            let ldl = ctx.rng.normal_in(125.0, 30.0, 50.0, 240.0);
            ctx.obs(d, "2089-1", ldl);
            let hdl = ctx.rng.normal_in(55.0, 12.0, 25.0, 100.0);
            ctx.obs(d, "2085-9", hdl);
        }
        if !ckd {
            let egfr = ctx.rng.normal_in(105.0 - f64::from(age.saturating_sub(30)) * 0.6, 12.0, 60.0, 140.0);
            ctx.obs(d, "33914-3", egfr);
            let creat = ctx.rng.normal_in(0.9, 0.15, 0.5, 1.2);
            ctx.obs(d, "2160-0", creat);
        }
        ctx.visit(sp, d, VisitType::Checkup);
    }
}

/// Imaging without the modelled findings (cough, headache, abdominal pain): negatives for the
/// image models, and the MRI/CT studies #4 fills with pixels.
fn incidental_imaging(ctx: &mut Ctx<'_>) {
    let start = ctx.history_start();
    let end = ctx.as_of();
    for (p, modality, part, desc, sp) in [
        (0.04, Modality::XRay, BodyPart::Chest, "Chest X-ray PA: no acute findings", Specialty::Radiology),
        (0.012, Modality::Mri, BodyPart::Head, "MRI brain: no acute findings", Specialty::Neurology),
        (0.01, Modality::Ct, BodyPart::Abdomen, "CT abdomen: unremarkable", Specialty::Radiology),
        (0.006, Modality::Ct, BodyPart::Chest, "CT chest: no consolidation", Specialty::Radiology),
    ] {
        if ctx.rng.chance(p) {
            let d = ctx.date_between(start, end);
            ctx.imaging(d, modality, part, desc);
            ctx.visit(sp, d, VisitType::Checkup);
        }
    }
}

fn vaccinations(ctx: &mut Ctx<'_>, age: u32) {
    let birth = ctx.birth;
    let as_of = ctx.as_of();
    let vax = |ctx: &mut Ctx<'_>, date: NaiveDate, atc: &str, display: &str, dose: u8| {
        if date <= as_of && date >= birth {
            let vaccine = VaccineCode::Atc(atc.parse().unwrap_or_else(|e| panic!("static ATC {atc}: {e}")));
            ctx.push(
                date,
                HistoryKind::Vaccination(Vaccination { vaccine, display: display.into(), dose_number: dose }),
            );
        }
    };
    let months = |m: u32| birth.checked_add_months(Months::new(m)).unwrap_or(birth);
    // Childhood schedule for those born since 2000 (records before that are rarely digital).
    if birth.year() >= 2000 {
        if ctx.rng.chance(0.93) {
            for (dose, m) in [(1, 2), (2, 4), (3, 11)] {
                vax(ctx, months(m), "J07CA09", "DTaP-IPV-Hib-HepB (hexavalent)", dose);
            }
        }
        if ctx.rng.chance(0.85) {
            for (dose, m) in [(1, 2), (2, 4), (3, 11)] {
                vax(ctx, months(m), "J07AL02", "Pneumococcal conjugate", dose);
            }
        }
        if ctx.rng.chance(0.93) {
            vax(ctx, months(11), "J07BD54", "MMR-Varicella", 1);
            if ctx.rng.chance(0.92) {
                vax(ctx, months(15), "J07BD54", "MMR-Varicella", 2);
            }
        }
        let girl = ctx.sex == Sex::Female;
        if age >= 9 && ctx.rng.chance(if girl { 0.55 } else { 0.30 }) && birth.year() >= 2008 {
            let start = 9 * 12 + ctx.rng.range(0, 60) as u32;
            vax(ctx, months(start), "J07BM03", "HPV (9-valent)", 1);
            vax(ctx, months(start + 6), "J07BM03", "HPV (9-valent)", 2);
        }
    }
    if age >= 18 {
        // Tetanus-diphtheria booster every ten years, for most.
        if ctx.rng.chance(0.7) {
            let mut d = ctx.date_between(as_of - Days::new(3650), as_of);
            let mut dose = 4;
            while d >= as_of - Days::new(3650 * 2) && d >= months(18 * 12) {
                vax(ctx, d, "J07AM51", "Tetanus-diphtheria (Td) booster", dose);
                d = d - Days::new(3650);
                dose += 1;
            }
        }
        // COVID-19 primary series (2021).
        if ctx.rng.chance(0.76) {
            let d1 = NaiveDate::from_ymd_opt(2021, 3, 1).unwrap_or(as_of) + Days::new(ctx.rng.range(0, 150) as u64);
            vax(ctx, d1, "J07BN01", "COVID-19 mRNA vaccine", 1);
            vax(ctx, d1 + Days::new(42), "J07BN01", "COVID-19 mRNA vaccine", 2);
        }
    }
    if age >= 60 {
        // Seasonal influenza, October/November, last five seasons.
        for back in 0..5 {
            let season = as_of.year() - back - i32::from(as_of.month() < 10);
            if ctx.rng.chance(0.42) {
                let d =
                    NaiveDate::from_ymd_opt(season, 10, 1).unwrap_or(as_of) + Days::new(ctx.rng.range(0, 55) as u64);
                vax(ctx, d, "J07BB02", "Influenza, inactivated", 1);
            }
        }
        if ctx.rng.chance(0.25) {
            let d = ctx.date_between(months(60 * 12), as_of);
            vax(ctx, d, "J07AL01", "Pneumococcal polysaccharide (PPSV23)", 1);
        }
    }
}

fn allergies(ctx: &mut Ctx<'_>) {
    const ALLERGIES: &[(&str, Option<&str>, &str, AllergySeverity, f64)] = &[
        ("Birch pollen", None, "Rhinoconjunctivitis", AllergySeverity::Mild, 0.12),
        ("House dust mite", None, "Rhinitis, asthma symptoms", AllergySeverity::Mild, 0.06),
        ("Penicillin", Some("J01CE"), "Urticarial rash", AllergySeverity::Moderate, 0.05),
        ("Ibuprofen", Some("M01AE01"), "Angioedema", AllergySeverity::Moderate, 0.01),
        ("Peanut", None, "Anaphylaxis", AllergySeverity::Severe, 0.008),
        ("Wasp venom", None, "Anaphylaxis", AllergySeverity::Severe, 0.01),
        ("Cat dander", None, "Rhinitis", AllergySeverity::Mild, 0.04),
    ];
    for (substance, code, reaction, severity, p) in ALLERGIES {
        if ctx.rng.chance(*p) {
            let d = ctx.date_between(ctx.birth + Days::new(365), ctx.as_of());
            let substance_code = code.map(|c| c.parse::<AtcCode>().unwrap_or_else(|e| panic!("static ATC {c}: {e}")));
            ctx.push(
                d,
                HistoryKind::Allergy(Allergy {
                    substance: (*substance).into(),
                    substance_code,
                    reaction: (*reaction).into(),
                    severity: *severity,
                }),
            );
        }
    }
}
