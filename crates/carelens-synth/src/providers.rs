//! Providers (practices of common specialties), their weekly schedules and latent quality.

use carelens_domain::{
    Address, GeoPoint, InsuranceKind, LanguageCode, Provider, ProviderId, ProviderKind, RatingSummary, RuleId,
    ScheduleRule, Specialty, VisitType,
};
use chrono::{NaiveDate, NaiveTime, Weekday};

use crate::rng::{Rng, mix, permute50};
use crate::tables::{CITIES, FAMILY_NAMES, STREETS};

/// Rough share of practices per specialty (KBV statistics, rounded).
const SPECIALTY_WEIGHTS: [(Specialty, f64); 13] = [
    (Specialty::GeneralPractice, 34.0),
    (Specialty::InternalMedicine, 9.0),
    (Specialty::Cardiology, 3.0),
    (Specialty::Pneumology, 2.0),
    (Specialty::Nephrology, 1.5),
    (Specialty::Neurology, 3.0),
    (Specialty::Orthopaedics, 6.0),
    (Specialty::Psychiatry, 3.5),
    (Specialty::Psychotherapy, 12.0),
    (Specialty::Gynaecology, 8.0),
    (Specialty::Radiology, 3.0),
    (Specialty::Paediatrics, 6.0),
    (Specialty::Dermatology, 4.0),
];

/// A generated provider with what the rest of the generator needs to know about it.
#[derive(Debug, Clone)]
pub struct GenProvider {
    pub provider: Provider,
    pub city: usize,
    /// Latent quality 1–5 that reviews scatter around.
    pub quality: f64,
    pub rules: Vec<ScheduleRule>,
}

/// Providers for a population of `patients`: one per ~250 people, at least one per specialty.
pub fn generate(seed: u64, patients: u64, valid_from: NaiveDate) -> Vec<GenProvider> {
    let n = (patients / 250).max(SPECIALTY_WEIGHTS.len() as u64);
    let weights: Vec<f64> = SPECIALTY_WEIGHTS.iter().map(|(_, w)| *w).collect();
    let city_weights: Vec<f64> = CITIES.iter().map(|c| c.population_k).collect();
    (0..n)
        .map(|i| {
            let mut rng = Rng::new(seed, i, 0xD0C);
            let specialty = if (i as usize) < SPECIALTY_WEIGHTS.len() {
                SPECIALTY_WEIGHTS[i as usize].0
            } else {
                SPECIALTY_WEIGHTS[rng.weighted(&weights)].0
            };
            let city = rng.weighted(&city_weights);
            let c = &CITIES[city];
            let id = ProviderId::from_number(permute50(seed ^ 0xD0C, i));
            let family = rng.pick(FAMILY_NAMES);
            let kind = if rng.chance(0.3) { ProviderKind::Practice } else { ProviderKind::Practitioner };
            let title = match specialty {
                Specialty::Psychotherapy => "Dipl.-Psych.",
                _ => "Dr. med.",
            };
            let name = match kind {
                ProviderKind::Practice => format!("Praxis {} {family} & Kollegen ({})", title, label(specialty)),
                ProviderKind::Practitioner => format!("{title} {family} ({})", label(specialty)),
            };
            let private_only = rng.chance(0.04);
            let accepts = if private_only {
                vec![InsuranceKind::Private]
            } else {
                vec![InsuranceKind::Statutory, InsuranceKind::Private]
            };
            let mut languages = vec![lang("de")];
            for (code, p) in [("en", 0.6), ("tr", 0.08), ("ru", 0.06), ("ar", 0.05), ("pl", 0.04), ("fr", 0.05)] {
                if rng.chance(p) {
                    languages.push(lang(code));
                }
            }
            let location = GeoPoint::new(c.lat + rng.uniform(-0.04, 0.04), c.lon + rng.uniform(-0.06, 0.06))
                .unwrap_or_else(|_| unreachable!("jitter stays within range"));
            let provider = Provider {
                id: id.clone(),
                kind,
                name,
                specialty,
                address: Address {
                    street: format!("{} {}", rng.pick(STREETS), rng.range(1, 120)),
                    postcode: format!("{:05}", c.postcode + rng.range(0, 30) as u32),
                    city: c.name.into(),
                    region: c.region.into(),
                },
                location,
                accepts,
                languages,
                rating: RatingSummary::default(),
            };
            let quality = rng.normal_in(4.1, 0.6, 1.5, 5.0);
            let rules = schedule(seed, i, &id, specialty, valid_from, &mut rng);
            GenProvider { provider, city, quality, rules }
        })
        .collect()
}

fn lang(code: &str) -> LanguageCode {
    LanguageCode::try_from(code.to_owned()).unwrap_or_else(|_| unreachable!("static language code"))
}

fn label(s: Specialty) -> &'static str {
    match s {
        Specialty::GeneralPractice => "Allgemeinmedizin",
        Specialty::InternalMedicine => "Innere Medizin",
        Specialty::Cardiology => "Kardiologie",
        Specialty::Pneumology => "Pneumologie",
        Specialty::Nephrology => "Nephrologie",
        Specialty::Neurology => "Neurologie",
        Specialty::Orthopaedics => "Orthopädie",
        Specialty::Psychiatry => "Psychiatrie",
        Specialty::Psychotherapy => "Psychotherapie",
        Specialty::Gynaecology => "Gynäkologie",
        Specialty::Radiology => "Radiologie",
        Specialty::Paediatrics => "Kinder- und Jugendmedizin",
        Specialty::Dermatology => "Dermatologie",
    }
}

/// Slot length by specialty (minutes).
pub fn slot_minutes(s: Specialty) -> u16 {
    match s {
        Specialty::Psychotherapy | Specialty::Psychiatry => 50,
        Specialty::Radiology | Specialty::Cardiology | Specialty::Pneumology | Specialty::Neurology => 20,
        Specialty::GeneralPractice | Specialty::Paediatrics => 10,
        _ => 15,
    }
}

/// Weekly template: mornings Mon–Fri, afternoons on two or three days, Friday afternoon off.
fn schedule(
    seed: u64,
    i: u64,
    id: &ProviderId,
    s: Specialty,
    valid_from: NaiveDate,
    rng: &mut Rng,
) -> Vec<ScheduleRule> {
    let t = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap_or_else(|| unreachable!("static time"));
    let minutes = slot_minutes(s);
    let visit = match s {
        Specialty::Radiology => VisitType::Checkup,
        Specialty::Psychotherapy => VisitType::FollowUp,
        _ => VisitType::FollowUp,
    };
    let afternoons: &[Weekday] =
        if rng.chance(0.5) { &[Weekday::Mon, Weekday::Tue, Weekday::Thu] } else { &[Weekday::Tue, Weekday::Thu] };
    let mut rules = Vec::new();
    let mut n = 0u64;
    let mut push = |weekday, start, end, visit_type| {
        n += 1;
        rules.push(ScheduleRule {
            id: RuleId::from_u128((u128::from(mix(&[seed, 0x5C4E])) << 64) | u128::from(i << 8 | n)),
            provider: id.clone(),
            weekday,
            start,
            end,
            slot_minutes: minutes,
            visit_type,
            valid_from,
            valid_until: None,
        });
    };
    for wd in [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri] {
        push(wd, t(8, 0), t(12, 0), visit);
        if afternoons.contains(&wd) {
            push(wd, t(14, 0), t(18, 0), visit);
        }
    }
    if matches!(s, Specialty::GeneralPractice | Specialty::Paediatrics) {
        // Open consultation hour for acute cases.
        push(Weekday::Wed, t(12, 0), t(13, 0), VisitType::Acute);
    }
    rules
}

/// Specialty index for grouping.
pub fn specialty_index(s: Specialty) -> usize {
    Specialty::ALL.iter().position(|x| *x == s).unwrap_or(0)
}
