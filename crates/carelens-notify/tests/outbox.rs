//! The outbox end to end on the embedded store: messages go out once, reminders when due,
//! failures are retried with backoff, moves and cancellations are respected.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use carelens_booking::notify::{outbox_for_booking, outbox_for_cancellation};
use carelens_domain::{AppointmentStatus, MessageKind, MessageState};
use carelens_notify::{Deliverer, RetryPolicy, Transport};
use carelens_store::conformance::fixtures::{appointment, date, patient, prescription, provider, time};
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
    let states: Vec<_> =
        s.messages_for(&a.id.into()).await.unwrap().into_iter().map(|m| (m.state, m.attempts)).collect();
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
    let m = &s.messages_for(&a.id.into()).await.unwrap()[0];
    assert_eq!((m.state, m.attempts, m.next_attempt), (MessageState::Pending, 1, now + Duration::minutes(1)));
    // Not before the backoff ends.
    assert_eq!(d.deliver_due(now + Duration::seconds(30)).await.unwrap().retried, 0);
    assert_eq!(d.deliver_due(now + Duration::minutes(1)).await.unwrap().retried, 1);
    let m = &s.messages_for(&a.id.into()).await.unwrap()[0];
    assert_eq!(m.next_attempt, now + Duration::minutes(1) + Duration::minutes(2));
    let r = d.deliver_due(now + Duration::minutes(3)).await.unwrap();
    assert_eq!(r.dead, 1, "the third failure is the last");
    let m = &s.messages_for(&a.id.into()).await.unwrap()[0];
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
    assert_eq!(s.cancel_messages(&a.id.into()).await.unwrap(), 2);
    s.enqueue_messages(&[outbox_for_cancellation(&cancelled, "patient@example.org", now).unwrap()]).await.unwrap();
    let r = d.deliver_due(moved.start).await.unwrap();
    assert_eq!((r.sent, r.cancelled), (1, 0));
    let files = eml(&mail);
    let cancel = files.iter().find(|f| f.contains("cancellation")).unwrap();
    let text = std::fs::read_to_string(mail.join(cancel)).unwrap();
    assert!(text.contains("METHOD:CANCEL") && text.contains("Subject: Appointment cancelled"), "{text}");
}

#[tokio::test]
async fn medication_reminders_go_out_at_their_time_without_the_drug_and_lapse_when_changed() {
    use carelens_records::reminders::{self, berlin};
    use chrono::NaiveTime;
    let tmp = tempfile::tempdir().unwrap();
    let (s, _) = store_with_booking(tmp.path()).await;
    let at = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
    // Ten days from 1 Dec 2026, one refill, reminders at 08:00 and 20:00, chosen at midnight.
    let mut rx = prescription(7, &patient(1).id, &provider(1).id, date(2026, 12, 1), 10, 1);
    rx.reminder_times = vec![at(8, 0), at(20, 0)];
    s.put_prescription(&rx).await.unwrap();
    let now = berlin(date(2026, 12, 1), at(0, 0));
    let msgs = reminders::schedule(&rx, "patient@example.org", now).unwrap();
    assert_eq!(msgs.len(), 10 * 2 + 1, "every dose of the supply, and one refill reminder");
    assert_eq!(s.enqueue_messages(&msgs).await.unwrap(), 21);
    let mail = tmp.path().join("mail");
    let d = Deliverer::new(
        Arc::clone(&s),
        Transport::Dir(mail.clone()),
        "carelens@carelens.example",
        RetryPolicy::default(),
    )
    .unwrap();

    // 08:05 on the first day: the 08:00 reminder, once; nothing of the evening yet.
    let first = berlin(date(2026, 12, 1), at(8, 5));
    assert_eq!(d.deliver_due(first).await.unwrap().sent, 1);
    assert_eq!(d.deliver_due(first).await.unwrap().sent, 0);
    let text = std::fs::read_to_string(mail.join(&eml(&mail)[0])).unwrap();
    assert!(text.contains("Subject: Reminder: your medication (08:00)"), "{text}");
    for secret in ["Simvastatin", "C10AA01", "20 mg", "Given1", "Family1"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }

    // The server was down all evening: the 20:00 reminder is not sent at 23:00 (misleading), it
    // lapses.
    let r = d.deliver_due(berlin(date(2026, 12, 1), at(23, 0))).await.unwrap();
    assert_eq!((r.sent, r.cancelled), (0, 1));

    // The patient turns reminders off (a new settings revision): the queued ones lapse at their
    // time even before anyone cancels them.
    rx.reminder_times.clear();
    rx.reminder_revision += 1;
    s.put_prescription(&rx).await.unwrap();
    let r = d.deliver_due(berlin(date(2026, 12, 2), at(8, 0))).await.unwrap();
    assert_eq!((r.sent, r.cancelled), (0, 1));
    // And back on at 08:00 only: new messages under the new revision go out; the refill reminder
    // comes three days before the supply ends (10 Dec), at 09:00.
    rx.reminder_times = vec![at(8, 0)];
    rx.reminder_revision += 1;
    s.put_prescription(&rx).await.unwrap();
    let now = berlin(date(2026, 12, 2), at(12, 0));
    assert_eq!(s.cancel_messages(&rx.id.into()).await.unwrap(), 18, "the rest under the old settings");
    let again = reminders::schedule(&rx, "patient@example.org", now).unwrap();
    assert_eq!(s.enqueue_messages(&again).await.unwrap(), 8 + 1);
    assert_eq!(d.deliver_due(berlin(date(2026, 12, 3), at(8, 10))).await.unwrap().sent, 1);
    // Down from 4 Dec until 8 Dec 09:00: the old doses lapse; the one an hour ago still goes,
    // and so does the refill reminder.
    let r = d.deliver_due(berlin(date(2026, 12, 8), at(9, 0))).await.unwrap();
    assert_eq!((r.sent, r.cancelled), (2, 4));
    let refill = eml(&mail).into_iter().find(|f| f.contains("refill_reminder")).unwrap();
    let text = std::fs::read_to_string(mail.join(refill)).unwrap();
    assert!(text.contains("Subject: Reminder: your prescription runs out soon"), "{text}");
    assert!(text.contains("lasts until 10.12.2026") && text.contains("1 refill(s) left"), "{text}");
}
