//! Openings from carelens's own schedule: weekly rules in local time (Europe/Berlin), breaks
//! as the gaps between a day's rules, closures (holidays, vacations) and the German
//! nationwide public holidays, up to a booking horizon.

use chrono::{DateTime, Datelike, Days, Duration, NaiveDate, Utc};

use carelens_domain::{ProviderId, ScheduleRule, Slot, SlotSource};

use crate::feeds::berlin_to_utc;

/// Days a provider does not see patients: one provider's, or everyone's when `provider` is
/// `None`. Inclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closure {
    pub provider: Option<ProviderId>,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub reason: String,
}

impl Closure {
    fn covers(&self, provider: &ProviderId, day: NaiveDate) -> bool {
        self.provider.as_ref().is_none_or(|p| p == provider) && self.from <= day && day <= self.to
    }
}

/// Easter Sunday (Gregorian; anonymous algorithm, Meeus/Jones/Butcher).
pub fn easter(year: i32) -> NaiveDate {
    let a = year % 19;
    let (b, c) = (year / 100, year % 100);
    let (d, e) = (b / 4, b % 4);
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let (i, k) = (c / 4, c % 4);
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, month as u32, day as u32).unwrap_or_default()
}

/// The public holidays of every German state in `year` (regional ones are closures).
pub fn public_holidays(year: i32) -> Vec<Closure> {
    let e = easter(year);
    let fixed = |m, d| NaiveDate::from_ymd_opt(year, m, d).unwrap_or_default();
    let rel = |days: i64| e + Duration::days(days);
    [
        (fixed(1, 1), "Neujahr"),
        (rel(-2), "Karfreitag"),
        (rel(1), "Ostermontag"),
        (fixed(5, 1), "Tag der Arbeit"),
        (rel(39), "Christi Himmelfahrt"),
        (rel(50), "Pfingstmontag"),
        (fixed(10, 3), "Tag der Deutschen Einheit"),
        (fixed(12, 25), "1. Weihnachtstag"),
        (fixed(12, 26), "2. Weihnachtstag"),
    ]
    .into_iter()
    .map(|(d, name)| Closure { provider: None, from: d, to: d, reason: name.into() })
    .collect()
}

/// Every slot `rules` offer that starts in `[from, until)`, except on closed days and public
/// holidays, in start order. Slots fill each rule's window from its start; a remainder shorter
/// than the slot length is not offered.
pub fn own_openings(
    rules: &[ScheduleRule],
    closures: &[Closure],
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Vec<Slot> {
    let mut out = Vec::new();
    if until <= from {
        return out;
    }
    // Local days that can hold a slot in the window (a day either side for the offset).
    let first = from.date_naive() - Days::new(1);
    let last = until.date_naive() + Days::new(1);
    let mut holidays = Vec::new();
    for y in first.year()..=last.year() {
        holidays.extend(public_holidays(y));
    }
    let mut day = first;
    while day <= last {
        for r in rules.iter().filter(|r| r.weekday == day.weekday()) {
            let valid = r.valid_from <= day && r.valid_until.is_none_or(|u| day <= u);
            let closed = closures.iter().chain(&holidays).any(|c| c.covers(&r.provider, day));
            if !valid || closed {
                continue;
            }
            let step = Duration::minutes(i64::from(r.slot_minutes));
            let mut t = r.start;
            while t + step <= r.end && t < t + step {
                if let (Some(start), Some(end)) = (berlin_to_utc(day, t), berlin_to_utc(day, t + step))
                    && start >= from
                    && start < until
                {
                    out.push(Slot {
                        provider: r.provider.clone(),
                        start,
                        end,
                        visit_type: r.visit_type,
                        source: SlotSource::Own,
                    });
                }
                t += step;
            }
        }
        let Some(next) = day.succ_opt() else { break };
        day = next;
    }
    out.sort_by(|a, b| (&a.provider, a.start).cmp(&(&b.provider, b.start)));
    out.dedup_by(|a, b| a.provider == b.provider && a.start == b.start);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn easter_dates() {
        for (y, m, d) in [(2024, 3, 31), (2025, 4, 20), (2026, 4, 5), (2027, 3, 28), (2038, 4, 25)] {
            assert_eq!(easter(y), NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default(), "{y}");
        }
    }
}
