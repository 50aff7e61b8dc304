//! The outbox end to end on the embedded store: messages go out once, reminders when due,
//! failures are retried with backoff, moves and cancellations are respected.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use carelens_booking::notify::{outbox_for_booking, outbox_for_cancellation};
use carelens_domain::{AppointmentStatus, MessageKind, MessageState};
use carelens_notify::{Deliverer, RetryPolicy, Transport};
use carelens_store::conformance::fixtures::{appointment, patient, provider, time};
use carelens_store::{SqliteStore, Store, WriteBatch};
use chrono::Duration;

async fn store_with_booking(dir: &std::path::Path) -> (Arc<dyn Store>, carelens_domain::Appointment) {
    let s: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.join("s.sqlite")).unwrap());
    let p = patient(1);
    let dr = provider(1);
    s.apply(WriteBatch { patients: vec![p.clone()], providers: vec![dr.clone()], ..WriteBatch::default() })
        .await
        .unwrap();
    let a = appointment(1, &p.id, &dr.id, time(2026, 12, 3, 9));
    s.book(&a).await.unwrap();
    (s, a)
}

fn eml(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.retain(|n| n.ends_with(".eml"));
    names.sort();
    names
}

#[tokio::test]
async fn each_message_goes_out_once_and_reminders_when_due() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, a) = store_with_booking(tmp.path()).await;
    let booked_at = time(2026, 11, 30, 10);
    let msgs = outbox_for_booking(&a, "patient@example.org", booked_at).unwrap();
    assert_eq!(
        msgs.iter().map(|m| m.kind).collect::<Vec<_>>(),
        [MessageKind::Confirmation, MessageKind::Reminder24h, MessageKind::Reminder2h]
    );
    assert_eq!(s.enqueue_messages(&msgs).await.unwrap(), 3);
    let mail = tmp.path().join("mail");
    let d = Deliverer::new(
        Arc::clone(&s),
        Transport::Dir(mail.clone()),
        "carelens <booking@carelens.example>",
        RetryPolicy::default(),
    )
    .unwrap();

    let r = d.deliver_due(booked_at).await.unwrap();
    assert_eq!((r.sent, r.retried, r.dead), (1, 0, 0));
    assert_eq!(d.deliver_due(booked_at + Duration::hours(1)).await.unwrap().sent, 0, "nothing twice, nothing early");
    let files = eml(&mail);
    assert_eq!(files.len(), 1);
    let text = std::fs::read_to_string(mail.join(&files[0])).unwrap();
    assert!(text.contains("Subject: Appointment confirmed"), "{text}");
    assert!(text.contains("text/calendar") && text.contains("appointment.ics"), "{text}");
    assert!(text.contains(&format!("Message-ID: <{}@carelens>", msgs[0].id)), "{text}");
    // The patient's name never appears in a message.
    assert!(!text.contains("Given1") && !text.contains("Family1"), "{text}");

    // A day before: the 24 h reminder; two hours before: the 2 h one.
    assert_eq!(d.deliver_due(a.start - Duration::hours(23)).await.unwrap().sent, 1);
    assert_eq!(d.deliver_due(a.start - Duration::minutes(90)).await.unwrap().sent, 1);
    assert_eq!(eml(&mail).len(), 3);
    let states: Vec<_> = s.messages_for(&a.id).await.unwrap().into_iter().map(|m| (m.state, m.attempts)).collect();
    assert_eq!(states, vec![(MessageState::Sent, 1); 3]);
    // Enqueueing the booking's messages again (a retried request) sends nothing more.
    assert_eq!(s.enqueue_messages(&msgs).await.unwrap(), 0);
    assert_eq!(d.deliver_due(a.start).await.unwrap().sent, 0);
}

#[tokio::test]
async fn an_unreachable_server_means_retries_with_backoff_then_dead() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, a) = store_with_booking(tmp.path()).await;
    let now = time(2026, 11, 30, 10);
    let msgs = outbox_for_booking(&a, "patient@example.org", now).unwrap();
    s.enqueue_messages(&msgs[..1]).await.unwrap();
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let policy = RetryPolicy { max_attempts: 3, ..RetryPolicy::default() };
    let smtp = Transport::from_url(&format!("smtp://127.0.0.1:{port}")).unwrap();
    let d = Deliverer::new(Arc::clone(&s), smtp, "booking@carelens.example", policy).unwrap();
    let r = d.deliver_due(now).await.unwrap();
    assert_eq!((r.sent, r.retried), (0, 1));
    assert!(r.last_error.is_some());
    let m = &s.messages_for(&a.id).await.unwrap()[0];
    assert_eq!((m.state, m.attempts, m.next_attempt), (MessageState::Pending, 1, now + Duration::minutes(1)));
    // Not before the backoff ends.
    assert_eq!(d.deliver_due(now + Duration::seconds(30)).await.unwrap().retried, 0);
    assert_eq!(d.deliver_due(now + Duration::minutes(1)).await.unwrap().retried, 1);
    let m = &s.messages_for(&a.id).await.unwrap()[0];
    assert_eq!(m.next_attempt, now + Duration::minutes(1) + Duration::minutes(2));
    let r = d.deliver_due(now + Duration::minutes(3)).await.unwrap();
    assert_eq!(r.dead, 1, "the third failure is the last");
    let m = &s.messages_for(&a.id).await.unwrap()[0];
    assert_eq!(m.state, MessageState::Dead);
    assert!(m.last_error.as_deref().unwrap().contains("gave up after 3 attempts"), "{:?}", m.last_error);
}

#[tokio::test]
async fn moved_and_cancelled_appointments_do_not_get_stale_reminders() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, a) = store_with_booking(tmp.path()).await;
    let now = time(2026, 11, 30, 10);
    s.enqueue_messages(&outbox_for_booking(&a, "patient@example.org", now).unwrap()).await.unwrap();
    let mail = tmp.path().join("mail");
    let d = Deliverer::new(
        Arc::clone(&s),
        Transport::Dir(mail.clone()),
        "booking@carelens.example",
        RetryPolicy::default(),
    )
    .unwrap();
    // Moved without the outbox being told: the old reminders are cancelled at delivery.
    let moved = s.reschedule(&a.id, a.start + Duration::hours(1), a.end + Duration::hours(1)).await.unwrap();
    let r = d.deliver_due(a.start).await.unwrap();
    assert_eq!((r.sent, r.cancelled), (0, 3));
    // The move's own messages go out; then a cancellation cancels what is pending.
    s.enqueue_messages(&outbox_for_booking(&moved, "patient@example.org", now).unwrap()).await.unwrap();
    assert_eq!(d.deliver_due(now).await.unwrap().sent, 1);
    let cancelled = s.set_appointment_status(&a.id, AppointmentStatus::Cancelled, now).await.unwrap();
    assert_eq!(s.cancel_messages(&a.id).await.unwrap(), 2);
    s.enqueue_messages(&[outbox_for_cancellation(&cancelled, "patient@example.org", now).unwrap()]).await.unwrap();
    let r = d.deliver_due(moved.start).await.unwrap();
    assert_eq!((r.sent, r.cancelled), (1, 0));
    let files = eml(&mail);
    let cancel = files.iter().find(|f| f.contains("cancellation")).unwrap();
    let text = std::fs::read_to_string(mail.join(cancel)).unwrap();
    assert!(text.contains("METHOD:CANCEL") && text.contains("Subject: Appointment cancelled"), "{text}");
}
