//! Turns the visits each patient's history implies into appointments on real provider slots:
//! nearest provider of the right specialty, waiting time by insurance type, no-shows and
//! cancellations, a few upcoming bookings, and reviews after completed visits.
//!
//! Runs in patient order on one thread, so slot assignment is deterministic and no two
//! appointments ever hold the same slot.

use std::collections::{HashMap, HashSet};

use carelens_domain::{
    Appointment, AppointmentId, AppointmentStatus, InsuranceKind, Review, ReviewId, Specialty, VisitType,
};
use chrono::{DateTime, Datelike, Days, Duration, NaiveDate, TimeZone, Utc, Weekday};

use crate::Config;
use crate::patient::{BOOKING_FUTURE_DAYS, PatientBundle, VisitRequest};
use crate::providers::{GenProvider, specialty_index};
use crate::rng::{Rng, mix};
use crate::tables::{CITIES, REVIEW_TEXTS};

/// Opening windows of one provider: per weekday (Mon = 0) a list of (start minute, end minute).
type Windows = [Vec<(u32, u32)>; 7];

pub struct Booker<'a> {
    cfg: &'a Config,
    providers: &'a [GenProvider],
    windows: Vec<Windows>,
    slot_minutes: Vec<u32>,
    /// Provider candidates by specialty and city: same city, else the nearest city that has one.
    candidates: Vec<Vec<Vec<usize>>>,
    taken: HashSet<(u32, i64)>,
    serial: u64,
    ratings: HashMap<usize, (u32, u32)>,
}

/// Europe/Berlin offset in hours (CET/CEST, EU rule: last Sunday of March/October).
fn berlin_offset_hours(d: NaiveDate) -> i64 {
    let last_sunday = |month: u32| {
        let mut x = NaiveDate::from_ymd_opt(d.year(), month, 31).unwrap_or(d);
        while x.weekday() != Weekday::Sun {
            x = x.pred_opt().unwrap_or(x);
        }
        x
    };
    if d >= last_sunday(3) && d < last_sunday(10) { 2 } else { 1 }
}

fn local_to_utc(d: NaiveDate, minute: u32) -> DateTime<Utc> {
    let naive = d.and_hms_opt(0, 0, 0).unwrap_or_default() + Duration::minutes(i64::from(minute));
    Utc.from_utc_datetime(&naive) - Duration::hours(berlin_offset_hours(d))
}

impl<'a> Booker<'a> {
    pub fn new(cfg: &'a Config, providers: &'a [GenProvider]) -> Self {
        let windows = providers
            .iter()
            .map(|p| {
                let mut w: Windows = Default::default();
                for r in &p.rules {
                    let start = r.start.signed_duration_since(chrono::NaiveTime::MIN).num_minutes() as u32;
                    let end = r.end.signed_duration_since(chrono::NaiveTime::MIN).num_minutes() as u32;
                    w[r.weekday.num_days_from_monday() as usize].push((start, end));
                }
                w
            })
            .collect();
        let slot_minutes =
            providers.iter().map(|p| u32::from(crate::providers::slot_minutes(p.provider.specialty))).collect();
        let mut candidates = vec![vec![Vec::new(); CITIES.len()]; Specialty::ALL.len()];
        for (s, spec) in Specialty::ALL.iter().enumerate() {
            let of_spec: Vec<usize> =
                providers.iter().enumerate().filter(|(_, p)| p.provider.specialty == *spec).map(|(i, _)| i).collect();
            for (c, city) in CITIES.iter().enumerate() {
                let here: Vec<usize> = of_spec.iter().copied().filter(|&i| providers[i].city == c).collect();
                candidates[s][c] = if !here.is_empty() {
                    here
                } else {
                    // Nearest provider(s) of that specialty.
                    let dist = |i: usize| {
                        let l = providers[i].provider.location;
                        (l.lat() - city.lat).powi(2) + ((l.lon() - city.lon) * 0.65).powi(2)
                    };
                    let mut sorted = of_spec.clone();
                    sorted.sort_by(|&a, &b| dist(a).total_cmp(&dist(b)).then(a.cmp(&b)));
                    sorted.truncate(3);
                    sorted
                };
            }
        }
        Self {
            cfg,
            providers,
            windows,
            slot_minutes,
            candidates,
            taken: HashSet::new(),
            serial: 0,
            ratings: HashMap::new(),
        }
    }

    /// Reviews per provider index: (count, sum of stars).
    pub fn ratings(&self) -> HashMap<usize, (u32, u32)> {
        self.ratings.clone()
    }

    fn next_id(&mut self) -> u128 {
        self.serial += 1;
        (u128::from(mix(&[self.cfg.seed, 0xA77])) << 64) | u128::from(self.serial)
    }

    /// Finds a free slot at `provider` on or after `day` (up to three weeks on); returns the
    /// local day and start minute.
    fn slot(&mut self, provider: usize, day: NaiveDate, roll: u64) -> Option<(NaiveDate, u32)> {
        let len = self.slot_minutes[provider];
        for offset in 0..21u64 {
            let d = day + Days::new(offset);
            let windows = &self.windows[provider][d.weekday().num_days_from_monday() as usize];
            let starts: Vec<u32> = windows
                .iter()
                .flat_map(|&(s, e)| (0..).map(move |k| s + k * len).take_while(move |m| m + len <= e))
                .collect();
            if starts.is_empty() {
                continue;
            }
            let first = (roll % starts.len() as u64) as usize;
            for k in 0..starts.len() {
                let m = starts[(first + k) % starts.len()];
                let key = (provider as u32, local_to_utc(d, m).timestamp() / 60);
                if self.taken.insert(key) {
                    return Some((d, m));
                }
            }
        }
        None
    }

    fn waiting_days(rng: &mut Rng, specialty: Specialty, visit: VisitType, insurance: InsuranceKind) -> u64 {
        if visit == VisitType::Acute {
            return rng.range(0, 1) as u64;
        }
        let mean = match specialty {
            Specialty::GeneralPractice | Specialty::Paediatrics => 4.0,
            Specialty::Psychotherapy => 45.0,
            Specialty::Psychiatry | Specialty::Neurology | Specialty::Nephrology => 30.0,
            Specialty::Radiology => 14.0,
            _ => 22.0,
        } * if insurance == InsuranceKind::Private { 0.5 } else { 1.0 };
        // Exponential waits, capped at four months.
        ((-mean * (1.0 - rng.f64()).ln()).round() as u64).min(120)
    }

    #[allow(clippy::too_many_arguments)]
    fn appointment(
        &mut self,
        b: &PatientBundle,
        provider: usize,
        day: NaiveDate,
        minute: u32,
        visit_type: VisitType,
        status: AppointmentStatus,
        waiting: u64,
        rng: &mut Rng,
    ) -> Appointment {
        let start = local_to_utc(day, minute);
        let end = start + Duration::minutes(i64::from(self.slot_minutes[provider]));
        let booked_at = (start - Duration::days(waiting as i64) - Duration::minutes(rng.range(30, 600))).min(start);
        let status_changed_at = match status {
            AppointmentStatus::Completed | AppointmentStatus::NoShow => end,
            AppointmentStatus::Cancelled => booked_at + (start - booked_at) / 2,
            AppointmentStatus::Confirmed => (booked_at + Duration::days(1)).min(start),
            _ => booked_at,
        };
        Appointment {
            id: AppointmentId::from_u128(self.next_id()),
            patient: b.patient.id.clone(),
            provider: self.providers[provider].provider.id.clone(),
            start,
            end,
            visit_type,
            status,
            booked_at,
            status_changed_at,
        }
    }

    fn pick_provider(&self, specialty: Specialty, city: usize, roll: u64) -> Option<usize> {
        let c = &self.candidates[specialty_index(specialty)][city];
        (!c.is_empty()).then(|| c[(roll >> 7) as usize % c.len()])
    }

    /// Appointments (and reviews) for one patient.
    pub fn book(&mut self, b: &PatientBundle) -> (Vec<Appointment>, Vec<Review>) {
        let mut rng = Rng::new(self.cfg.seed, b.index, 0xB00C);
        let insurance = b.patient.insurance.kind;
        let mut appts = Vec::new();
        let mut reviews = Vec::new();
        let mut visits: Vec<VisitRequest> = b.visits.clone();
        visits.sort_by_key(|v| v.day);
        // A few upcoming bookings: chronic patients and some others.
        if !visits.is_empty() && rng.chance(0.35) || rng.chance(0.08) {
            let sp = visits.last().map_or(Specialty::GeneralPractice, |v| v.specialty);
            let day = self.cfg.as_of + Days::new(rng.range(1, BOOKING_FUTURE_DAYS as i64) as u64);
            visits.push(VisitRequest { specialty: sp, day, visit_type: VisitType::FollowUp, roll: rng.next_u64() });
        }
        for v in visits {
            let Some(provider) = self.pick_provider(v.specialty, b.city, v.roll) else {
                continue;
            };
            let waiting = Self::waiting_days(&mut rng, v.specialty, v.visit_type, insurance);
            let future = v.day > self.cfg.as_of;
            // Missed attempts before the visit that happened: no-shows and cancellations.
            if !future {
                for (p, status) in [(0.12, AppointmentStatus::NoShow), (0.09, AppointmentStatus::Cancelled)] {
                    if v.visit_type != VisitType::Acute && rng.chance(p) {
                        let earlier = v.day - Days::new(rng.range(7, 28) as u64);
                        if let Some((d, m)) = self.slot(provider, earlier, rng.next_u64())
                            && d <= self.cfg.as_of
                        {
                            let a = self.appointment(b, provider, d, m, v.visit_type, status, waiting, &mut rng);
                            appts.push(a);
                        }
                    }
                }
            }
            let Some((d, m)) = self.slot(provider, v.day, v.roll) else {
                continue;
            };
            let status = if d > self.cfg.as_of {
                if rng.chance(0.4) { AppointmentStatus::Confirmed } else { AppointmentStatus::Booked }
            } else {
                AppointmentStatus::Completed
            };
            let a = self.appointment(b, provider, d, m, v.visit_type, status, waiting, &mut rng);
            if status == AppointmentStatus::Completed && rng.chance(0.06) {
                let quality = self.providers[provider].quality;
                let stars = rng.normal(quality, 0.9).round().clamp(1.0, 5.0) as u8;
                let date = (d + Days::new(rng.range(0, 10) as u64)).min(self.cfg.as_of);
                let text = rng.pick(REVIEW_TEXTS[usize::from(stars - 1)]).to_string();
                let id = ReviewId::from_u128(self.next_id() | (1 << 63));
                reviews.push(Review {
                    id,
                    provider: a.provider.clone(),
                    patient: a.patient.clone(),
                    stars,
                    text,
                    date,
                    verified_visit: true,
                });
                let e = self.ratings.entry(provider).or_insert((0, 0));
                e.0 += 1;
                e.1 += u32::from(stars);
            }
            appts.push(a);
        }
        appts.sort_by_key(|a| (a.start, a.id));
        (appts, reviews)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn berlin_time() {
        // 2025: CEST from 30 March to 26 October.
        let d = |m, day| NaiveDate::from_ymd_opt(2025, m, day).unwrap();
        assert_eq!(berlin_offset_hours(d(3, 29)), 1);
        assert_eq!(berlin_offset_hours(d(3, 30)), 2);
        assert_eq!(berlin_offset_hours(d(10, 25)), 2);
        assert_eq!(berlin_offset_hours(d(10, 26)), 1);
        assert_eq!(local_to_utc(d(7, 1), 8 * 60).to_rfc3339(), "2025-07-01T06:00:00+00:00");
        assert_eq!(local_to_utc(d(1, 2), 8 * 60).to_rfc3339(), "2025-01-02T07:00:00+00:00");
    }
}
