//! What an appointment tells its patient, and when: a confirmation at booking and reminders
//! 24 h and 2 h before (those already past at booking are not sent), plus the iCalendar file
//! attached to each. Subjects and calendar text name the practice and the time, never the
//! patient or a diagnosis.

use chrono::{DateTime, Duration, Utc};

use carelens_domain::{Appointment, OutboxMessage, Provider, VisitType};

pub use carelens_domain::MessageKind;

/// The messages a fresh booking schedules, with when each is due.
pub fn schedule(a: &Appointment, now: DateTime<Utc>) -> Vec<(MessageKind, DateTime<Utc>)> {
    let mut out = vec![(MessageKind::Confirmation, now)];
    for (kind, before) in
        [(MessageKind::Reminder24h, Duration::hours(24)), (MessageKind::Reminder2h, Duration::hours(2))]
    {
        let due = a.start - before;
        if due > now {
            out.push((kind, due));
        }
    }
    out
}

/// The outbox messages a fresh booking (or a move to a new time) owes its patient at `to`:
/// a confirmation now, reminders 24 h and 2 h before where still ahead.
pub fn outbox_for_booking(a: &Appointment, to: &str, now: DateTime<Utc>) -> crate::Result<Vec<OutboxMessage>> {
    schedule(a, now)
        .into_iter()
        .map(|(kind, due)| {
            OutboxMessage::new(a.id, kind, a.start, to, due)
                .map_err(|e| crate::BookingError::Invalid { field: "email", message: e.to_string() })
        })
        .collect()
}

/// The message telling the patient at `to` that `a` was cancelled.
pub fn outbox_for_cancellation(a: &Appointment, to: &str, now: DateTime<Utc>) -> crate::Result<OutboxMessage> {
    OutboxMessage::new(a.id, MessageKind::Cancellation, a.start, to, now)
        .map_err(|e| crate::BookingError::Invalid { field: "email", message: e.to_string() })
}

fn visit_label(v: VisitType) -> &'static str {
    match v {
        VisitType::FirstVisit => "first visit",
        VisitType::FollowUp => "follow-up",
        VisitType::Acute => "acute consultation",
        VisitType::Checkup => "check-up",
        VisitType::Video => "video consultation",
    }
}

/// The plain-text body of a message: practice, address, time and visit type, and what to do;
/// never the patient's name or anything from their record.
pub fn body(kind: MessageKind, provider: &Provider, a: &Appointment) -> String {
    let when = crate::feeds::berlin_local(a.start);
    let addr = &provider.address;
    let what = match kind {
        MessageKind::Confirmation => "Your appointment is booked.",
        MessageKind::Reminder24h => "A reminder: your appointment is tomorrow.",
        MessageKind::Reminder2h => "A reminder: your appointment is in two hours.",
        MessageKind::Cancellation => "Your appointment has been cancelled; the time is free again.",
        // Prescription messages have texts of their own (`carelens_records::reminders`).
        MessageKind::MedicationReminder | MessageKind::RefillReminder => "A reminder about your appointment.",
    };
    let next = match kind {
        MessageKind::Cancellation => "To book another time, sign in to carelens and search again.",
        _ => {
            "To move or cancel it, sign in to carelens (My appointments). The attached calendar file adds it to your calendar."
        }
    };
    format!(
        "{what}\n\n  When:  {when} (Berlin time)\n  Where: {}, {}, {} {}\n  Visit: {}\n\n{next}\n\n-- \ncarelens booking; this message was sent automatically.\n",
        provider.name,
        addr.street,
        addr.postcode,
        addr.city,
        visit_label(a.visit_type),
    )
}

/// The subject line of a message (no patient data).
pub fn subject(kind: MessageKind, provider: &Provider, a: &Appointment) -> String {
    let when = crate::feeds::berlin_local(a.start);
    match kind {
        MessageKind::Confirmation => format!("Appointment confirmed: {when}, {}", provider.name),
        MessageKind::Reminder24h => format!("Reminder: appointment tomorrow, {when}"),
        MessageKind::Reminder2h => format!("Reminder: appointment today, {when}"),
        MessageKind::Cancellation => format!("Appointment cancelled: {when}"),
        MessageKind::MedicationReminder | MessageKind::RefillReminder => format!("Reminder: appointment {when}"),
    }
}

fn ics_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// Folds a content line at 75 octets (RFC 5545 §3.1), never inside a UTF-8 character.
fn fold_line(line: &str, out: &mut String) {
    let mut width = 0;
    for c in line.chars() {
        if width + c.len_utf8() > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += c.len_utf8();
    }
    out.push_str("\r\n");
}

fn ics_time(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

/// The appointment as an iCalendar (RFC 5545) file: one VEVENT in UTC with the practice's
/// address, `METHOD:CANCEL` and `STATUS:CANCELLED` when `cancelled`. The UID is the
/// appointment's, so calendars update the same event.
pub fn ics(a: &Appointment, provider: &Provider, stamp: DateTime<Utc>, cancelled: bool) -> String {
    let addr = &provider.address;
    let lines = [
        "BEGIN:VCALENDAR".to_owned(),
        "VERSION:2.0".to_owned(),
        "PRODID:-//carelens//booking//EN".to_owned(),
        format!("METHOD:{}", if cancelled { "CANCEL" } else { "PUBLISH" }),
        "BEGIN:VEVENT".to_owned(),
        format!("UID:{}@carelens", a.id),
        format!("SEQUENCE:{}", u8::from(cancelled)),
        format!("DTSTAMP:{}", ics_time(stamp)),
        format!("DTSTART:{}", ics_time(a.start)),
        format!("DTEND:{}", ics_time(a.end)),
        format!("SUMMARY:{}", ics_text(&format!("Appointment: {}", provider.name))),
        format!("LOCATION:{}", ics_text(&format!("{}, {} {}", addr.street, addr.postcode, addr.city))),
        format!("STATUS:{}", if cancelled { "CANCELLED" } else { "CONFIRMED" }),
        "END:VEVENT".to_owned(),
        "END:VCALENDAR".to_owned(),
    ];
    let mut out = String::new();
    for l in &lines {
        fold_line(l, &mut out);
    }
    out
}
