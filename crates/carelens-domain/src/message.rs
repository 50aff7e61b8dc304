//! The notification outbox: one row per message an appointment owes its patient
//! (confirmation, reminders, cancellation), persisted before anything is sent, so that a
//! crash, a restart or an unreachable mail server loses nothing and sends nothing twice.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Validate;
use crate::error::{Result, ensure};
use crate::ids::AppointmentId;

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
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confirmation => "confirmation",
            Self::Reminder24h => "reminder_24h",
            Self::Reminder2h => "reminder_2h",
            Self::Cancellation => "cancellation",
        }
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

/// One message in the outbox. Its id is derived from the appointment, the kind and the
/// appointment start it was scheduled for, so enqueueing the same message twice (a retried
/// booking request, a crash between booking and enqueueing) stores it once.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxMessage {
    pub id: String,
    pub appointment: AppointmentId,
    pub kind: MessageKind,
    /// The appointment start this message was scheduled for.
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
            appointment,
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
}
