//! Delivers what the outbox holds: booking confirmations, reminders and cancellations by
//! e-mail, each with the appointment as an iCalendar (`.ics`) attachment, and a prescription's
//! medication and refill reminders (`carelens_records::reminders`).
//!
//! The outbox lives in the store (`Store::enqueue_messages` at booking time), so nothing is
//! lost when the mail server is down or carelens restarts. A [`Deliverer`] claims due
//! messages with a lease (concurrent workers never take the same one), sends each, and
//! records the outcome: sent; retried with exponential backoff after a temporary failure;
//! dead after a permanent refusal or too many attempts. A message whose appointment moved or
//! was cancelled meanwhile is cancelled instead of sent, as is a medication reminder the patient
//! turned off, whose prescription was cancelled, or whose time is long past.
//!
//! Exactly once: the outbox holds one row per message (its id comes from the appointment, the
//! kind and the start), a claimed message is held by one worker, and it is marked sent as
//! soon as the server accepts it. The one window left is a crash after the server accepted
//! the message and before that mark; the message is then sent again when its lease ends, with
//! the same `Message-ID`, which mail clients use to drop the duplicate.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use thiserror::Error;

use carelens_booking::notify;
use carelens_domain::{AppointmentStatus, MessageKind, MessageState, MessageSubject, OutboxMessage};
use carelens_records::reminders;
use carelens_store::Store;

#[derive(Debug, Error)]
pub enum NotifyError {
    /// The transport URL or sender address is unusable; the message says which and why.
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] carelens_store::StoreError),
}

pub type Result<T> = std::result::Result<T, NotifyError>;

/// Where messages go.
#[derive(Clone)]
pub enum Transport {
    /// An SMTP server (`smtp://host:port`, `smtp://host?tls=required` for STARTTLS,
    /// `smtps://user:password@host` for implicit TLS).
    Smtp { transport: AsyncSmtpTransport<Tokio1Executor>, location: String },
    /// A directory that receives one `<message id>.eml` per message (`file:///path`): for
    /// the embedded demo and for people without a mail server.
    Dir(PathBuf),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.location())
    }
}

impl Transport {
    /// Parses a transport URL; credentials never appear in errors or in [`Transport::location`].
    pub fn from_url(url: &str) -> Result<Self> {
        if let Some(path) = url.strip_prefix("file://") {
            if path.is_empty() {
                return Err(NotifyError::Config(
                    "file:// needs a directory, e.g. file:///var/lib/carelens/mail".into(),
                ));
            }
            return Ok(Self::Dir(PathBuf::from(path)));
        }
        let location = redact(url);
        if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
            return Err(NotifyError::Config(format!(
                "mail transport {location}: use smtp://host:port, smtps://host, or file:///directory"
            )));
        }
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| NotifyError::Config(format!("mail transport {location}: {e}")))?
            .timeout(Some(StdDuration::from_secs(20)))
            .build();
        Ok(Self::Smtp { transport, location })
    }

    /// The transport without credentials, for logs and reports.
    pub fn location(&self) -> String {
        match self {
            Self::Smtp { location, .. } => location.clone(),
            Self::Dir(p) => format!("file://{}", p.display()),
        }
    }

    async fn send(&self, id: &str, message: Message) -> std::result::Result<(), SendFailure> {
        match self {
            Self::Smtp { transport, .. } => match transport.send(message).await {
                Ok(_) => Ok(()),
                Err(e) if e.is_permanent() => Err(SendFailure::Permanent(e.to_string())),
                Err(e) => Err(SendFailure::Temporary(e.to_string())),
            },
            Self::Dir(dir) => {
                let write = async {
                    tokio::fs::create_dir_all(dir).await?;
                    let tmp = dir.join(format!(".{id}.eml.tmp"));
                    tokio::fs::write(&tmp, message.formatted()).await?;
                    tokio::fs::rename(&tmp, dir.join(format!("{id}.eml"))).await
                };
                write.await.map_err(|e| SendFailure::Temporary(format!("{}: {e}", dir.display())))
            }
        }
    }
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}***{}", &url[..s + 3], &url[at..]),
        _ => url.to_owned(),
    }
}

enum Prepared {
    /// The e-mail, or why it cannot be composed (a permanent failure).
    Ready(std::result::Result<Message, String>),
    /// Its appointment moved or was cancelled, or the reminder is no longer wanted.
    Stale,
    /// What it is about is gone; the reason.
    Gone(String),
}

enum SendFailure {
    Temporary(String),
    Permanent(String),
}

/// How often and how long to retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// The wait after the first failure; it doubles after each further one.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// After this many failed attempts the message is dead.
    pub max_attempts: u32,
    /// How long a worker holds a claimed message before others may take it.
    pub lease: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            first_backoff: Duration::minutes(1),
            max_backoff: Duration::hours(6),
            max_attempts: 8,
            lease: Duration::minutes(5),
        }
    }
}

impl RetryPolicy {
    /// The wait after `attempts` failed attempts: 1, 2, 4, … minutes, at most `max_backoff`.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let factor = 1i32 << attempts.saturating_sub(1).min(20);
        (self.first_backoff * factor).min(self.max_backoff)
    }
}

/// What one delivery round did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeliveryReport {
    pub sent: u32,
    /// Failed for now; tried again after the backoff.
    pub retried: u32,
    /// Given up (permanent refusal, too many attempts, or the appointment is gone).
    pub dead: u32,
    /// Not sent because the appointment moved or was cancelled meanwhile, or the reminder is no
    /// longer wanted.
    pub cancelled: u32,
    /// The last failure, if any (no recipient or content in it).
    pub last_error: Option<String>,
}

/// Sends due outbox messages through a [`Transport`].
pub struct Deliverer {
    store: Arc<dyn Store>,
    transport: Transport,
    from: Mailbox,
    policy: RetryPolicy,
}

impl Deliverer {
    /// `from` is the sender, e.g. `carelens <booking@praxis.example>`.
    pub fn new(store: Arc<dyn Store>, transport: Transport, from: &str, policy: RetryPolicy) -> Result<Self> {
        let from = from.parse::<Mailbox>().map_err(|e| NotifyError::Config(format!("sender address {from:?}: {e}")))?;
        Ok(Self { store, transport, from, policy })
    }

    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Claims and sends every message due by `now`, in batches, until none is left.
    pub async fn deliver_due(&self, now: DateTime<Utc>) -> Result<DeliveryReport> {
        let mut report = DeliveryReport::default();
        loop {
            let batch = self.store.claim_messages(now, now + self.policy.lease, 50).await?;
            if batch.is_empty() {
                return Ok(report);
            }
            for m in batch {
                self.deliver_one(m, now, &mut report).await?;
            }
        }
    }

    /// The e-mail `m` should become, or why it should not be sent.
    async fn prepare(&self, m: &OutboxMessage, now: DateTime<Utc>) -> Result<Prepared> {
        let gone = |what: &str| Prepared::Gone(format!("the {what} or its practice no longer exists"));
        match m.subject() {
            Some(MessageSubject::Appointment(id)) => {
                let Some(a) = self.store.get_appointment(&id).await? else { return Ok(gone("appointment")) };
                let Some(provider) = self.store.get_provider(&a.provider).await? else {
                    return Ok(gone("appointment"));
                };
                let stale = match m.kind {
                    MessageKind::Cancellation => a.status != AppointmentStatus::Cancelled,
                    _ => a.start != m.start || a.status.is_final() || a.start <= now,
                };
                if stale {
                    return Ok(Prepared::Stale);
                }
                Ok(Prepared::Ready(self.compose(m, &a, &provider, now)))
            }
            Some(MessageSubject::Prescription(id)) => {
                let Some(rx) = self.store.get_prescription(&id).await? else { return Ok(gone("prescription")) };
                let Some(provider) = self.store.get_provider(&rx.provider).await? else {
                    return Ok(gone("prescription"));
                };
                if !reminders::still_wanted(m, &rx, now) {
                    return Ok(Prepared::Stale);
                }
                Ok(Prepared::Ready(self.compose_reminder(m, &rx, &provider.name, now)))
            }
            None => Ok(Prepared::Gone("the message is about neither an appointment nor a prescription".into())),
        }
    }

    async fn deliver_one(&self, mut m: OutboxMessage, now: DateTime<Utc>, report: &mut DeliveryReport) -> Result<()> {
        let composed = match self.prepare(&m, now).await? {
            Prepared::Gone(why) => {
                m.state = MessageState::Dead;
                m.last_error = Some(why);
                report.dead += 1;
                return Ok(self.store.finish_message(&m).await?);
            }
            Prepared::Stale => {
                m.state = MessageState::Cancelled;
                report.cancelled += 1;
                return Ok(self.store.finish_message(&m).await?);
            }
            Prepared::Ready(composed) => composed,
        };
        m.attempts += 1;
        let outcome = match composed {
            Ok(message) => self.transport.send(&m.id, message).await,
            Err(e) => Err(SendFailure::Permanent(e)),
        };
        match outcome {
            Ok(()) => {
                m.state = MessageState::Sent;
                m.sent_at = Some(now);
                m.last_error = None;
                report.sent += 1;
                tracing::info!(message = %m.id, kind = m.kind.as_str(), "sent");
            }
            Err(SendFailure::Permanent(e)) => {
                m.state = MessageState::Dead;
                tracing::warn!(message = %m.id, error = %e, "refused for good");
                report.last_error = Some(e.clone());
                m.last_error = Some(e);
                report.dead += 1;
            }
            Err(SendFailure::Temporary(e)) if m.attempts >= self.policy.max_attempts => {
                m.state = MessageState::Dead;
                tracing::warn!(message = %m.id, attempts = m.attempts, error = %e, "giving up");
                report.last_error = Some(e.clone());
                m.last_error = Some(format!("gave up after {} attempts: {e}", m.attempts));
                report.dead += 1;
            }
            Err(SendFailure::Temporary(e)) => {
                m.next_attempt = now + self.policy.backoff(m.attempts);
                tracing::info!(message = %m.id, attempts = m.attempts, retry_at = %m.next_attempt, error = %e, "will retry");
                report.last_error = Some(e.clone());
                m.last_error = Some(e);
                report.retried += 1;
            }
        }
        Ok(self.store.finish_message(&m).await?)
    }

    fn compose_reminder(
        &self,
        m: &OutboxMessage,
        rx: &carelens_domain::Prescription,
        practice: &str,
        now: DateTime<Utc>,
    ) -> std::result::Result<Message, String> {
        let to = m.to.parse::<Mailbox>().map_err(|e| format!("recipient address: {e}"))?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(reminders::subject(m.kind, m.start))
            .message_id(Some(format!("<{}@carelens>", m.id)))
            .date(now.into())
            .singlepart(SinglePart::plain(reminders::body(m.kind, rx, practice, m.start)))
            .map_err(|e| e.to_string())
    }

    fn compose(
        &self,
        m: &OutboxMessage,
        a: &carelens_domain::Appointment,
        provider: &carelens_domain::Provider,
        now: DateTime<Utc>,
    ) -> std::result::Result<Message, String> {
        let to = m.to.parse::<Mailbox>().map_err(|e| format!("recipient address: {e}"))?;
        let cancelled = m.kind == MessageKind::Cancellation;
        let ics = notify::ics(a, provider, now, cancelled);
        let method = if cancelled { "CANCEL" } else { "PUBLISH" };
        let calendar =
            ContentType::parse(&format!("text/calendar; charset=utf-8; method={method}")).map_err(|e| e.to_string())?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(notify::subject(m.kind, provider, a))
            .message_id(Some(format!("<{}@carelens>", m.id)))
            .date(now.into())
            .multipart(
                MultiPart::mixed()
                    .singlepart(SinglePart::plain(notify::body(m.kind, provider, a)))
                    .singlepart(Attachment::new("appointment.ics".into()).body(ics, calendar)),
            )
            .map_err(|e| e.to_string())
    }
}

/// Runs delivery rounds every `every` until `stop` resolves; a failed round (store down) is
/// logged and tried again next time.
pub async fn run(deliverer: Arc<Deliverer>, every: StdDuration, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    loop {
        match deliverer.deliver_due(Utc::now()).await {
            Ok(r) if r.sent + r.retried + r.dead + r.cancelled > 0 => tracing::info!(
                sent = r.sent,
                retried = r.retried,
                dead = r.dead,
                cancelled = r.cancelled,
                "outbox round"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "outbox round failed; trying again later"),
        }
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy::default();
        let mins: Vec<i64> = (1..=10).map(|n| p.backoff(n).num_minutes()).collect();
        assert_eq!(mins, [1, 2, 4, 8, 16, 32, 64, 128, 256, 360]);
    }

    #[test]
    fn transport_urls_are_checked_and_credentials_hidden() {
        let t = Transport::from_url("smtp://user:secret@127.0.0.1:2525").unwrap();
        assert!(!t.location().contains("secret"), "{}", t.location());
        let e = Transport::from_url("http://mail.example").unwrap_err().to_string();
        assert!(e.contains("smtp://"), "{e}");
        assert!(matches!(Transport::from_url("file:///tmp/mail").unwrap(), Transport::Dir(_)));
        assert!(Transport::from_url("file://").is_err());
    }
}
