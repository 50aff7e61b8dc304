//! Medication reminders: what a prescription owes its patient through the outbox (#8), and
//! whether a queued reminder is still wanted when its time comes.
//!
//! A patient who asks for reminders picks up to four Berlin wall-clock times a day; each day
//! the prescription covers (from today to the end of the fills so far, at most
//! [`HORIZON_DAYS`] ahead) gets one message per time, and, while refills are left, one refill
//! reminder at 09:00 [`REFILL_NOTICE_DAYS`] days before the supply runs out. Message ids come
//! from the prescription, the kind and the time, so scheduling again (after a refill extends
//! the coverage, after a retried request) adds only what is missing.
//!
//! Messages name the practice and the time, never the drug: an e-mail can be read by others,
//! and what someone takes is part of their record. The patient signs in to see which.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Europe::Berlin;

use carelens_domain::{
    DomainError, MAX_REMINDER_TIMES, MessageKind, OutboxMessage, Prescription, PrescriptionStatus,
    prescription_message_id,
};

/// Reminders are scheduled at most this many days ahead; a refill schedules the next stretch.
pub const HORIZON_DAYS: i64 = 400;

/// The refill reminder goes out this many days before the last covered day ends.
pub const REFILL_NOTICE_DAYS: i64 = 3;

/// A dose reminder that could not go out within this many minutes of its time (mail server
/// down, carelens stopped) is dropped: a reminder to take the morning dose at night misleads.
pub const DOSE_GRACE_MINUTES: i64 = 60;

/// The time the refill reminder goes out (Berlin).
const REFILL_AT: NaiveTime = match NaiveTime::from_hms_opt(9, 0, 0) {
    Some(t) => t,
    None => unreachable!(),
};

/// Sorts and checks the times a patient asked for: at most [`MAX_REMINDER_TIMES`], no two the
/// same, whole minutes.
pub fn normalise_times(times: &[NaiveTime]) -> Result<Vec<NaiveTime>, String> {
    let mut out: Vec<NaiveTime> = times.to_vec();
    out.sort();
    if out.windows(2).any(|w| w[0] == w[1]) {
        return Err("each reminder time may appear once".into());
    }
    if out.len() > MAX_REMINDER_TIMES {
        return Err(format!("at most {MAX_REMINDER_TIMES} reminders a day"));
    }
    if out.iter().any(|t| t.format("%S%.f").to_string() != "00") {
        return Err("reminder times are whole minutes, e.g. 08:00".into());
    }
    Ok(out)
}

/// `day` at `time` on the Berlin wall clock, as UTC; a time the clock skips (the spring DST
/// change) moves an hour later, a time it passes twice takes the first.
pub fn berlin(day: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let local = day.and_time(time);
    Berlin
        .from_local_datetime(&local)
        .earliest()
        .or_else(|| Berlin.from_local_datetime(&(local + Duration::hours(1))).earliest())
        .map_or_else(|| local.and_utc(), |t| t.with_timezone(&Utc))
}

fn berlin_day(t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&Berlin).date_naive()
}

/// When the refill reminder for the current coverage is due, if one is owed.
pub fn refill_due(rx: &Prescription) -> Option<DateTime<Utc>> {
    (rx.status == PrescriptionStatus::Active && rx.refills_left() > 0 && !rx.refill_pending())
        .then(|| berlin(rx.covered_until() - Duration::days(REFILL_NOTICE_DAYS - 1), REFILL_AT))
}

/// The reminders `rx` owes its patient at `to` from `now` on (none when the patient chose no
/// times or the prescription was cancelled).
pub fn schedule(rx: &Prescription, to: &str, now: DateTime<Utc>) -> Result<Vec<OutboxMessage>, DomainError> {
    if rx.status != PrescriptionStatus::Active || rx.reminder_times.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let first = rx.start.max(berlin_day(now));
    let last = rx.covered_until().min(berlin_day(now) + Duration::days(HORIZON_DAYS));
    for day in first.iter_days().take_while(|d| *d <= last) {
        for time in &rx.reminder_times {
            let at = berlin(day, *time);
            if at > now {
                out.push(OutboxMessage::for_prescription(
                    rx.id,
                    MessageKind::MedicationReminder,
                    at,
                    to,
                    rx.reminder_revision,
                )?);
            }
        }
    }
    if let Some(at) = refill_due(rx).filter(|at| *at > now) {
        out.push(OutboxMessage::for_prescription(rx.id, MessageKind::RefillReminder, at, to, rx.reminder_revision)?);
    }
    Ok(out)
}

/// Whether the queued reminder `m` about `rx` should still go out at `now`: the prescription
/// is active, the reminder was queued under the current settings, the patient still wants
/// reminders at that time, the day is covered and the dose
/// is not long past; a refill reminder only while refills are left, none was requested yet and
/// the supply end it announced has not moved.
pub fn still_wanted(m: &OutboxMessage, rx: &Prescription, now: DateTime<Utc>) -> bool {
    let current_settings = m.id == prescription_message_id(rx.id, m.kind, m.start, rx.reminder_revision);
    if rx.status != PrescriptionStatus::Active || !current_settings {
        return false;
    }
    match m.kind {
        MessageKind::MedicationReminder => {
            let local = m.start.with_timezone(&Berlin);
            let wanted_time = rx.reminder_times.iter().any(|t| berlin(local.date_naive(), *t) == m.start);
            wanted_time
                && local.date_naive() <= rx.covered_until()
                && now <= m.start + Duration::minutes(DOSE_GRACE_MINUTES)
        }
        MessageKind::RefillReminder => !rx.reminder_times.is_empty() && refill_due(rx) == Some(m.start),
        _ => false,
    }
}

/// The subject line: no drug, no patient.
pub fn subject(kind: MessageKind, at: DateTime<Utc>) -> String {
    let when = at.with_timezone(&Berlin).format("%H:%M");
    match kind {
        MessageKind::RefillReminder => "Reminder: your prescription runs out soon".into(),
        _ => format!("Reminder: your medication ({when})"),
    }
}

/// The plain-text body: the practice that prescribed, the time, what to do; never the drug.
pub fn body(kind: MessageKind, rx: &Prescription, practice: &str, at: DateTime<Utc>) -> String {
    let local = at.with_timezone(&Berlin);
    let what = match kind {
        MessageKind::RefillReminder => format!(
            "Your prescription from {} (started {}) lasts until {}. You have {} refill(s) left; request one in carelens (My prescriptions) so you do not run out.",
            practice,
            rx.start.format("%d.%m.%Y"),
            rx.covered_until().format("%d.%m.%Y"),
            rx.refills_left()
        ),
        _ => format!(
            "It is {}: time for the medication {} prescribed on {}, at the dose you were given.",
            local.format("%H:%M"),
            practice,
            rx.start.format("%d.%m.%Y")
        ),
    };
    format!(
        "{what}\n\nFor your privacy this e-mail does not name the medication; sign in to carelens (My prescriptions) to see it, or to change or turn off these reminders.\n\n-- \ncarelens; this message was sent automatically.\n"
    )
}

#[cfg(test)]
mod tests {
    use carelens_domain::{HealthId, ProviderId, RefillRequest, RefillState};
    use carelens_store::conformance::fixtures::prescription;

    use super::*;

    fn t(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    fn rx(start: NaiveDate, days: u16, refills: u8, times: &[NaiveTime]) -> Prescription {
        let mut p = prescription(5, &HealthId::from_number(1), &ProviderId::from_number(1), start, days, refills);
        p.reminder_times = times.to_vec();
        p
    }

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn times_are_sorted_unique_whole_minutes_and_few() {
        assert_eq!(normalise_times(&[t(20, 0), t(8, 0)]).unwrap(), [t(8, 0), t(20, 0)]);
        assert!(normalise_times(&[t(8, 0), t(8, 0)]).is_err());
        assert!(normalise_times(&[t(1, 0), t(2, 0), t(3, 0), t(4, 0), t(5, 0)]).is_err());
        assert!(normalise_times(&[NaiveTime::from_hms_opt(8, 0, 30).unwrap()]).is_err());
        assert!(normalise_times(&[]).unwrap().is_empty());
    }

    #[test]
    fn every_covered_day_gets_each_time_from_now_on_plus_one_refill_reminder() {
        // 10 days from 1 Dec, two times a day, asked for on 3 Dec at 12:00 Berlin (11:00 UTC).
        let p = rx(day(2026, 12, 1), 10, 1, &[t(8, 0), t(20, 0)]);
        let now = berlin(day(2026, 12, 3), t(12, 0));
        let msgs = schedule(&p, "a@b.de", now).unwrap();
        let doses: Vec<_> = msgs.iter().filter(|m| m.kind == MessageKind::MedicationReminder).collect();
        // 3 Dec 20:00, then 4–10 Dec twice a day.
        assert_eq!(doses.len(), 1 + 7 * 2);
        assert_eq!(doses[0].due, berlin(day(2026, 12, 3), t(20, 0)));
        assert_eq!(doses[0].due.to_rfc3339(), "2026-12-03T19:00:00+00:00", "Berlin is UTC+1 in winter");
        assert_eq!(doses.last().unwrap().due, berlin(day(2026, 12, 10), t(20, 0)));
        let refill: Vec<_> = msgs.iter().filter(|m| m.kind == MessageKind::RefillReminder).collect();
        assert_eq!(refill.len(), 1);
        assert_eq!(refill[0].due, berlin(day(2026, 12, 8), t(9, 0)), "three days before the supply ends");
        // Scheduling again gives the same ids (the outbox stores them once).
        let again = schedule(&p, "a@b.de", now).unwrap();
        assert_eq!(msgs.iter().map(|m| &m.id).collect::<Vec<_>>(), again.iter().map(|m| &m.id).collect::<Vec<_>>());
    }

    #[test]
    fn nothing_without_times_when_cancelled_or_without_refills() {
        let now = berlin(day(2026, 12, 1), t(0, 0));
        assert!(schedule(&rx(day(2026, 12, 1), 10, 1, &[]), "a@b.de", now).unwrap().is_empty());
        let mut p = rx(day(2026, 12, 1), 10, 0, &[t(8, 0)]);
        assert!(schedule(&p, "a@b.de", now).unwrap().iter().all(|m| m.kind == MessageKind::MedicationReminder));
        p.status = PrescriptionStatus::Cancelled;
        assert!(schedule(&p, "a@b.de", now).unwrap().is_empty());
    }

    #[test]
    fn summer_time_and_the_skipped_hour() {
        assert_eq!(berlin(day(2026, 7, 1), t(8, 0)).to_rfc3339(), "2026-07-01T06:00:00+00:00");
        // 29 Mar 2026: clocks jump from 02:00 to 03:00; a 02:30 reminder goes at 03:30 CEST.
        assert_eq!(berlin(day(2026, 3, 29), t(2, 30)).to_rfc3339(), "2026-03-29T01:30:00+00:00");
    }

    #[test]
    fn a_queued_reminder_lapses_when_things_change() {
        let mut p = rx(day(2026, 12, 1), 10, 1, &[t(8, 0)]);
        let now = berlin(day(2026, 12, 1), t(0, 0));
        let msgs = schedule(&p, "a@b.de", now).unwrap();
        let dose = &msgs[0];
        let refill = msgs.iter().find(|m| m.kind == MessageKind::RefillReminder).unwrap();
        assert!(still_wanted(dose, &p, dose.due));
        assert!(!still_wanted(dose, &p, dose.due + Duration::hours(2)), "long past its time");
        assert!(still_wanted(refill, &p, refill.due));
        // The patient moves the reminder to 09:00: the 08:00 one lapses.
        p.reminder_times = vec![t(9, 0)];
        assert!(!still_wanted(dose, &p, dose.due));
        p.reminder_times = vec![t(8, 0)];
        // Settings changed since it was queued (even back to the same times): it lapses, the
        // newly scheduled one goes.
        p.reminder_revision += 1;
        assert!(!still_wanted(dose, &p, dose.due));
        let fresh = schedule(&p, "a@b.de", now).unwrap();
        assert!(still_wanted(&fresh[0], &p, dose.due) && fresh[0].id != dose.id);
        // A refill was requested: no need to remind.
        p.refill_requests.push(RefillRequest { at: now, state: RefillState::Requested });
        assert!(!still_wanted(refill, &p, refill.due));
        p.refill_requests.clear();
        // Cancelled by the doctor: nothing goes out.
        p.status = PrescriptionStatus::Cancelled;
        assert!(!still_wanted(dose, &p, dose.due) && !still_wanted(refill, &p, refill.due));
    }

    #[test]
    fn messages_never_name_the_drug() {
        let p = rx(day(2026, 12, 1), 10, 1, &[t(8, 0)]);
        let practice = "Praxis am Markt";
        for kind in [MessageKind::MedicationReminder, MessageKind::RefillReminder] {
            let at = berlin(day(2026, 12, 2), t(8, 0));
            let text = format!("{} {}", subject(kind, at), body(kind, &p, practice, at));
            assert!(!text.contains("Simvastatin") && !text.contains("C10AA01") && !text.contains("20 mg"), "{text}");
            assert!(text.contains(practice), "{text}");
        }
    }
}
