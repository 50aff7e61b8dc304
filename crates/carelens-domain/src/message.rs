//! The notification outbox: one row per message an appointment owes its patient
//! (confirmation, reminders, cancellation) or a prescription owes its patient (medication and
//! refill reminders), persisted before anything is sent, so that a crash, a restart or an
//! unreachable mail server loses nothing and sends nothing twice.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Validate;
use crate::error::{Result, ensure};
use crate::ids::{AppointmentId, PrescriptionId};

/// What a message tells the patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    Confirmation,
    #[serde(rename = "reminder_24h")]
    Reminder24h,
    #[serde(rename = "reminder_2h")]
    Reminder2h,
    Cancellation,
    /// Time to take a prescribed medication (the patient chose the times).
    MedicationReminder,
    /// A prescription's supply runs out in a few days and refills are left.
    RefillReminder,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confirmation => "confirmation",
            Self::Reminder24h => "reminder_24h",
            Self::Reminder2h => "reminder_2h",
            Self::Cancellation => "cancellation",
            Self::MedicationReminder => "medication_reminder",
            Self::RefillReminder => "refill_reminder",
        }
    }

    /// Whether the message is about a prescription (else about an appointment).
    pub fn is_about_prescription(self) -> bool {
        matches!(self, Self::MedicationReminder | Self::RefillReminder)
    }
}

/// What a message is about: the key the outbox files it under, so that everything an
/// appointment or a prescription owes can be listed and cancelled at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageSubject {
    Appointment(AppointmentId),
    Prescription(PrescriptionId),
}

impl fmt::Display for MessageSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Appointment(a) => a.fmt(f),
            Self::Prescription(p) => p.fmt(f),
        }
    }
}

impl From<AppointmentId> for MessageSubject {
    fn from(a: AppointmentId) -> Self {
        Self::Appointment(a)
    }
}

impl From<PrescriptionId> for MessageSubject {
    fn from(p: PrescriptionId) -> Self {
        Self::Prescription(p)
    }
}

/// Where a message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageState {
    /// Waiting for its due time, or for its next attempt after a failure.
    Pending,
    /// The mail server accepted it.
    Sent,
    /// Given up after too many failed attempts; `last_error` says why.
    Dead,
    /// The appointment moved or was cancelled before the message went out.
    Cancelled,
}

impl MessageState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sent => "sent",
            Self::Dead => "dead",
            Self::Cancelled => "cancelled",
        }
    }
}

/// One message in the outbox. Its id is derived from the appointment (or prescription), the
/// kind and the time it was scheduled for, so enqueueing the same message twice (a retried
/// booking request, a crash between booking and enqueueing) stores it once.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxMessage {
    pub id: String,
    /// The appointment an appointment message is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appointment: Option<AppointmentId>,
    /// The prescription a medication or refill reminder is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prescription: Option<PrescriptionId>,
    pub kind: MessageKind,
    /// The appointment start this message was scheduled for; for a prescription's
    /// reminders, the time the reminder is for.
    pub start: DateTime<Utc>,
    /// The recipient's e-mail address.
    pub to: String,
    pub due: DateTime<Utc>,
    pub state: MessageState,
    pub attempts: u32,
    /// Not before this time (the due time, then the backoff after each failure).
    pub next_attempt: DateTime<Utc>,
    /// A worker holds the message until then; others leave it alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leased_until: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<DateTime<Utc>>,
}

impl fmt::Debug for OutboxMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboxMessage")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("to", &"<redacted>")
            .field("due", &self.due)
            .field("state", &self.state)
            .field("attempts", &self.attempts)
            .finish()
    }
}

impl OutboxMessage {
    /// A pending message for `appointment` (scheduled for `start`) due at `due`.
    pub fn new(
        appointment: AppointmentId,
        kind: MessageKind,
        start: DateTime<Utc>,
        to: &str,
        due: DateTime<Utc>,
    ) -> Result<Self> {
        let m = Self {
            id: format!("{appointment}.{}.{}", kind.as_str(), start.timestamp()),
            appointment: Some(appointment),
            prescription: None,
            kind,
            start,
            to: to.to_owned(),
            due,
            state: MessageState::Pending,
            attempts: 0,
            next_attempt: due,
            leased_until: None,
            last_error: None,
            sent_at: None,
        };
        m.validate()?;
        Ok(m)
    }

    /// A pending reminder of `kind` about `prescription`, for and due at `at`, scheduled under
    /// the prescription's reminder settings `revision` (so that times chosen again after a
    /// change are new messages, not the ones cancelled by the change).
    pub fn for_prescription(
        prescription: PrescriptionId,
        kind: MessageKind,
        at: DateTime<Utc>,
        to: &str,
        revision: u32,
    ) -> Result<Self> {
        let m = Self {
            id: prescription_message_id(prescription, kind, at, revision),
            appointment: None,
            prescription: Some(prescription),
            kind,
            start: at,
            to: to.to_owned(),
            due: at,
            state: MessageState::Pending,
            attempts: 0,
            next_attempt: at,
            leased_until: None,
            last_error: None,
            sent_at: None,
        };
        m.validate()?;
        Ok(m)
    }

    /// The appointment or prescription the message is about.
    pub fn subject(&self) -> Option<MessageSubject> {
        match (self.appointment, self.prescription) {
            (Some(a), None) => Some(MessageSubject::Appointment(a)),
            (None, Some(p)) => Some(MessageSubject::Prescription(p)),
            _ => None,
        }
    }
}

/// The id of the reminder of `kind` about `prescription` at `at` under settings `revision`.
pub fn prescription_message_id(
    prescription: PrescriptionId,
    kind: MessageKind,
    at: DateTime<Utc>,
    revision: u32,
) -> String {
    format!("{prescription}.{}.{}.r{revision}", kind.as_str(), at.timestamp())
}

/// Whether `s` can be a mail recipient: `local@domain`, printable ASCII, no spaces or line
/// breaks (so it can never inject a header), at most 254 characters.
pub fn valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else { return false };
    s.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && s.bytes().all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>' && b != b',' && b != b';')
}

impl Validate for OutboxMessage {
    fn validate(&self) -> Result<()> {
        ensure(!self.id.is_empty() && self.id.len() <= 128, "message.id", || "must be 1–128 characters".into())?;
        let subject_fits = match self.subject() {
            Some(MessageSubject::Appointment(_)) => !self.kind.is_about_prescription(),
            Some(MessageSubject::Prescription(_)) => self.kind.is_about_prescription(),
            None => false,
        };
        ensure(subject_fits, "message.subject", || {
            format!(
                "a {} message is about exactly one {}",
                self.kind.as_str(),
                if self.kind.is_about_prescription() { "prescription" } else { "appointment" }
            )
        })?;
        ensure(valid_email(&self.to), "message.to", || "is not an e-mail address (local@domain)".into())?;
        ensure(self.next_attempt >= self.due, "message.next_attempt", || "is before the due time".into())?;
        ensure(self.state != MessageState::Sent || self.sent_at.is_some(), "message.sent_at", || {
            "a sent message records when".into()
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_that_could_inject_headers_are_refused() {
        for ok in ["a@b.de", "max.muster+booking@praxis-beispiel.de"] {
            assert!(valid_email(ok), "{ok}");
        }
        for bad in
            ["", "a", "@b.de", "a@", "a@b", "a@.de", "a b@c.de", "a@b.de\r\nBcc: x@y.de", "<a@b.de>", "a@b.de,c@d.de"]
        {
            assert!(!valid_email(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_same_message_gets_the_same_id() {
        let a = AppointmentId::from_u128(7);
        let t = DateTime::parse_from_rfc3339("2026-12-01T09:30:00Z").unwrap().with_timezone(&Utc);
        let m1 = OutboxMessage::new(a, MessageKind::Reminder24h, t, "a@b.de", t).unwrap();
        let m2 = OutboxMessage::new(a, MessageKind::Reminder24h, t, "a@b.de", t).unwrap();
        assert_eq!(m1.id, m2.id);
        assert_ne!(m1.id, OutboxMessage::new(a, MessageKind::Reminder2h, t, "a@b.de", t).unwrap().id);
        assert!(OutboxMessage::new(a, MessageKind::Confirmation, t, "nobody", t).is_err());
    }

    #[test]
    fn a_message_is_about_the_subject_its_kind_needs() {
        let t = DateTime::parse_from_rfc3339("2026-12-01T08:00:00Z").unwrap().with_timezone(&Utc);
        let rx = PrescriptionId::from_u128(9);
        let m = OutboxMessage::for_prescription(rx, MessageKind::MedicationReminder, t, "a@b.de", 0).unwrap();
        assert_eq!(m.subject(), Some(MessageSubject::Prescription(rx)));
        let next = OutboxMessage::for_prescription(rx, MessageKind::MedicationReminder, t, "a@b.de", 1).unwrap();
        assert_ne!(m.id, next.id, "a new revision of the settings makes new messages");
        assert!(OutboxMessage::for_prescription(rx, MessageKind::Reminder2h, t, "a@b.de", 0).is_err());
        assert!(OutboxMessage::new(AppointmentId::from_u128(1), MessageKind::RefillReminder, t, "a@b.de", t).is_err());
        let mut both = m.clone();
        both.appointment = Some(AppointmentId::from_u128(1));
        assert!(both.validate().is_err());
        // Messages stored before prescriptions had reminders still read.
        let old = r#"{"id":"x","appointment":"00000000-0000-0000-0000-000000000007","kind":"confirmation",
            "start":"2026-12-01T08:00:00Z","to":"a@b.de","due":"2026-12-01T08:00:00Z","state":"pending",
            "attempts":0,"next_attempt":"2026-12-01T08:00:00Z"}"#;
        let old: OutboxMessage = serde_json::from_str(old).unwrap();
        assert_eq!(old.subject(), Some(MessageSubject::Appointment(AppointmentId::from_u128(7))));
    }
}
