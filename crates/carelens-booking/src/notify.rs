//! What an appointment tells its patient, and when: a confirmation at booking and reminders
//! 24 h and 2 h before (those already past at booking are not sent), plus the iCalendar file
//! attached to each. Subjects and calendar text name the practice and the time, never the
//! patient or a diagnosis.

use chrono::{DateTime, Duration, Utc};

use carelens_domain::{Appointment, Provider};

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

/// The subject line of a message (no patient data).
pub fn subject(kind: MessageKind, provider: &Provider, a: &Appointment) -> String {
    let when = crate::feeds::berlin_local(a.start);
    match kind {
        MessageKind::Confirmation => format!("Appointment confirmed: {when}, {}", provider.name),
        MessageKind::Reminder24h => format!("Reminder: appointment tomorrow, {when}"),
        MessageKind::Reminder2h => format!("Reminder: appointment today, {when}"),
        MessageKind::Cancellation => format!("Appointment cancelled: {when}"),
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
