//! The booking crate through its public API, on the two sample feeds in `fixtures/`.

#![allow(clippy::unwrap_used)]

use carelens_booking::BookingError;
use carelens_booking::feeds::{self, Platform};
use carelens_booking::merge::{Directory, merge};
use carelens_booking::notify::{self, MessageKind};
use carelens_booking::policy::Policy;
use carelens_booking::schedule::{Closure, own_openings};
use carelens_booking::search::{Candidate, SearchQuery, search, shrunk_rating};
use carelens_domain::{
    Address, Appointment, AppointmentId, AppointmentStatus, GeoPoint, HealthId, InsuranceKind, Opening, Provenance,
    Provider, ProviderId, ProviderKind, RatingSummary, RuleId, ScheduleRule, Slot, SlotSource, Specialty, VisitType,
};
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc, Weekday};

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn provider(n: u64, name: &str, street: &str, postcode: &str, at: (f64, f64), rating: (f64, u32)) -> Provider {
    Provider {
        id: ProviderId::from_number(n),
        kind: ProviderKind::Practitioner,
        name: name.into(),
        specialty: Specialty::Cardiology,
        address: Address {
            street: street.into(),
            postcode: postcode.into(),
            city: "Berlin".into(),
            region: "Berlin".into(),
        },
        location: GeoPoint::new(at.0, at.1).unwrap(),
        accepts: vec![InsuranceKind::Statutory, InsuranceKind::Private],
        languages: vec!["de".to_string().try_into().unwrap()],
        rating: RatingSummary { mean: rating.0, count: rating.1 },
    }
}

fn mueller() -> Provider {
    provider(1, "Dr. med. Müller (Kardiologie)", "Hauptstr. 12", "10117", (52.517, 13.389), (4.6, 120))
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::PathBuf::from(
            std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join("tests/fixtures")
        .join(name),
    )
    .unwrap()
}

fn problems(f: &feeds::ParsedFeed) -> Vec<String> {
    f.problems.iter().map(|p| p.path.clone()).collect()
}

#[test]
fn doctolib_feed_keeps_good_entries_and_names_bad_ones() {
    let f = feeds::parse(Platform::Doctolib, "doctolib.json", &fixture("doctolib.json")).unwrap();
    assert_eq!(
        problems(&f),
        [
            "agendas[0].visit_motives[2].duration_minutes",
            "agendas[0].availabilities[0].slots[2].start_date",
            "agendas[0].availabilities[0].slots[3].visit_motive_id",
            "agendas[0].availabilities[1].slots",
            "agendas[2].practitioner",
        ]
    );
    assert!(f.problems[0].message.contains("0 minutes"), "{}", f.problems[0]);
    assert!(f.problems[2].message.contains("no visit motive 7"), "{}", f.problems[2]);
    assert_eq!(f.openings.len(), 3);
    let first = &f.openings[0];
    assert_eq!(first.external_id, "doctolib:991");
    assert_eq!((first.start, first.end), (utc("2026-12-01T08:00:00Z"), utc("2026-12-01T08:30:00Z")));
    assert_eq!(first.visit_type, VisitType::FirstVisit);
    assert_eq!(first.insurance, [InsuranceKind::Statutory, InsuranceKind::Private]);
    // No `kind`: the German motive name says it is a follow-up.
    assert_eq!(
        (f.openings[1].visit_type, f.openings[1].end - f.openings[1].start),
        (VisitType::FollowUp, Duration::minutes(15))
    );
}

#[test]
fn jameda_feed_is_local_time_with_german_labels() {
    let f = feeds::parse(Platform::Jameda, "jameda.json", &fixture("jameda.json")).unwrap();
    assert_eq!(
        problems(&f),
        [
            "praxen[0].kalender[0].uhrzeiten[3]",
            "praxen[0].kalender[1].tag",
            "praxen[0].kalender[2].uhrzeiten[0]",
            "praxen[0].kalender[3].arzt_ref",
            "praxen[0].kalender[4].terminart",
        ]
    );
    assert!(f.problems[2].message.contains("does not exist in Europe/Berlin"), "{}", f.problems[2]);
    let starts: Vec<_> = f.openings.iter().map(|o| o.start).collect();
    // 09:00 in December is CET (UTC+1); 03:00 on the day clocks go forward is CEST (UTC+2).
    assert_eq!(
        starts,
        [
            utc("2026-12-01T08:00:00Z"),
            utc("2026-12-01T08:15:00Z"),
            utc("2026-12-01T11:00:00Z"),
            utc("2026-03-29T01:00:00Z")
        ]
    );
    assert_eq!(f.openings[0].external_id, "jameda:jm-4711/a1");
    assert_eq!(f.openings[3].insurance, [InsuranceKind::Private]);
}

#[test]
fn a_feed_that_is_not_its_platforms_shape_is_one_clear_error() {
    let err = feeds::parse(Platform::Doctolib, "x.json", &fixture("jameda.json")).unwrap_err().to_string();
    assert!(err.contains("x.json") && err.contains("agendas") && err.contains("praxen"), "{err}");
    let err = feeds::parse(Platform::Jameda, "y.json", b"{\"praxen\": [").unwrap_err().to_string();
    assert!(err.starts_with("feed `y.json`: not JSON"), "{err}");
    let big = vec![b' '; feeds::MAX_FEED_BYTES + 1];
    assert!(feeds::parse(Platform::Jameda, "big", &big).unwrap_err().to_string().contains("limit"));
    // Empty lists are fine: nothing to import, nothing wrong.
    let f = feeds::parse(Platform::Jameda, "empty", b"{\"praxen\": []}").unwrap();
    assert!(f.openings.is_empty() && f.problems.is_empty());
}

#[test]
fn merging_folds_the_same_slot_from_both_platforms_and_keeps_provenance() {
    let d = feeds::parse(Platform::Doctolib, "d", &fixture("doctolib.json")).unwrap();
    let j = feeds::parse(Platform::Jameda, "j", &fixture("jameda.json")).unwrap();
    let m = mueller();
    let other = provider(2, "Dr. Weiß", "Hauptstr. 14", "10117", (52.517, 13.389), (4.0, 3));
    let own = [Slot {
        provider: m.id.clone(),
        start: utc("2026-12-01T11:00:00Z"),
        end: utc("2026-12-01T11:30:00Z"),
        visit_type: VisitType::FirstVisit,
        source: SlotSource::Own,
    }];
    let report = merge(&Directory::new([&m, &other]), &own, &[d, j]);
    let got: Vec<(DateTime<Utc>, usize)> = report.openings.iter().map(|o| (o.start, o.sources.len())).collect();
    assert_eq!(
        got,
        [
            (utc("2026-03-29T01:00:00Z"), 1),
            (utc("2026-12-01T08:00:00Z"), 2),
            (utc("2026-12-01T09:00:00Z"), 1),
            (utc("2026-12-01T11:00:00Z"), 2),
        ]
    );
    assert!(report.openings.iter().all(|o| o.provider == m.id));
    assert_eq!(
        report.openings[1].sources,
        [
            Provenance::Feed { feed: "doctolib".into(), external_id: "doctolib:991".into() },
            Provenance::Feed { feed: "jameda".into(), external_id: "jameda:jm-4711/a1".into() },
        ]
    );
    // The own schedule comes first in provenance.
    assert_eq!(report.openings[3].sources[0], Provenance::Own);
    assert_eq!((report.duplicates, report.overlaps), (2, 1));
    assert_eq!(report.unmatched.len(), 1);
    assert_eq!(report.unmatched[0].external_id, "doctolib:1207");
    // Two directory entries with one key match neither.
    let twin = provider(3, "Praxis Dr. Müller", "Hauptstraße 12", "10117", (52.5, 13.4), (4.0, 1));
    let d = feeds::parse(Platform::Doctolib, "d", &fixture("doctolib.json")).unwrap();
    let report = merge(&Directory::new([&m, &twin]), &[], &[d]);
    assert!(report.openings.is_empty());
    assert_eq!(report.unmatched.len(), 2);
}

fn rule(provider: &ProviderId, weekday: Weekday, from: (u32, u32), to: (u32, u32), minutes: u16) -> ScheduleRule {
    ScheduleRule {
        id: RuleId::random(),
        provider: provider.clone(),
        weekday,
        start: NaiveTime::from_hms_opt(from.0, from.1, 0).unwrap(),
        end: NaiveTime::from_hms_opt(to.0, to.1, 0).unwrap(),
        slot_minutes: minutes,
        visit_type: VisitType::FollowUp,
        valid_from: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
        valid_until: None,
    }
}

#[test]
fn own_openings_follow_rules_breaks_closures_holidays_and_daylight_saving() {
    let p = ProviderId::from_number(1);
    // Tuesdays 08:00–12:00 in 30-minute slots, a lunch break, 14:00–15:00 in 20-minute slots;
    // Fridays 08:00–09:00.
    let rules = [
        rule(&p, Weekday::Tue, (8, 0), (12, 0), 30),
        rule(&p, Weekday::Tue, (14, 0), (15, 0), 20),
        rule(&p, Weekday::Fri, (8, 0), (9, 10), 30),
    ];
    let closures = [Closure {
        provider: Some(p.clone()),
        from: NaiveDate::from_ymd_opt(2026, 12, 8).unwrap(),
        to: NaiveDate::from_ymd_opt(2026, 12, 8).unwrap(),
        reason: "Fortbildung".into(),
    }];
    let slots = own_openings(&rules, &closures, utc("2026-12-01T00:00:00Z"), utc("2026-12-26T00:00:00Z"));
    let per_day =
        |d: u32| slots.iter().filter(|s| s.start.date_naive() == NaiveDate::from_ymd_opt(2026, 12, d).unwrap()).count();
    // Tuesday 1st and 15th and 22nd: 8 + 3; the 8th is closed. Fridays 4th, 11th, 18th: 2
    // (09:00–09:30 does not fit before 09:10); the 25th is Christmas.
    assert_eq!([per_day(1), per_day(8), per_day(15), per_day(22)], [11, 0, 11, 11]);
    assert_eq!([per_day(4), per_day(11), per_day(18), per_day(25)], [2, 2, 2, 0]);
    assert_eq!(slots[0].start, utc("2026-12-01T07:00:00Z"));
    assert!(slots.iter().all(|s| s.source == SlotSource::Own));
    assert!(slots.windows(2).all(|w| w[0].start < w[1].start));
    // In summer the same local times are an hour earlier in UTC.
    let june = own_openings(&rules[..1], &[], utc("2026-06-01T00:00:00Z"), utc("2026-06-03T00:00:00Z"));
    assert_eq!(june[0].start, utc("2026-06-02T06:00:00Z"));
    // The window is half-open and may be empty.
    assert!(own_openings(&rules, &[], utc("2026-12-01T07:00:00Z"), utc("2026-12-01T07:00:00Z")).is_empty());
}

#[test]
fn search_ranks_by_wait_distance_and_shrunk_rating() {
    assert!((shrunk_rating(5.0, 2) - 4.1667).abs() < 1e-3);
    assert!((shrunk_rating(4.7, 300) - 4.6774).abs() < 1e-3);
    let now = utc("2026-11-30T08:00:00Z");
    let home = GeoPoint::new(52.52, 13.405).unwrap();
    let few = provider(1, "Dr. Few", "A 1", "10115", (52.53, 13.405), (5.0, 2));
    let many = provider(2, "Dr. Many", "B 1", "10115", (52.53, 13.405), (4.7, 300));
    let none = provider(3, "Dr. None", "C 1", "10115", (52.521, 13.405), (5.0, 500));
    let mut private_only = provider(4, "Dr. Privat", "D 1", "10115", (52.52, 13.405), (5.0, 500));
    private_only.accepts = vec![InsuranceKind::Private];
    let far = provider(5, "Dr. Far", "E 1", "20095", (53.55, 9.99), (5.0, 500));
    let soon = now + Duration::days(3);
    let candidates = || {
        vec![
            Candidate { provider: &few, earliest: Some(soon) },
            Candidate { provider: &many, earliest: Some(soon) },
            Candidate { provider: &none, earliest: None },
            Candidate { provider: &private_only, earliest: Some(soon) },
            Candidate { provider: &far, earliest: Some(now + Duration::days(1)) },
        ]
    };
    let q = SearchQuery {
        near: Some(home),
        radius_km: Some(50.0),
        insurance: Some(InsuranceKind::Statutory),
        ..SearchQuery::default()
    };
    let page = search(&q, now, candidates());
    let ids: Vec<&ProviderId> = page.hits.iter().map(|h| &h.provider).collect();
    assert_eq!(ids, [&many.id, &few.id, &none.id], "the 4.7 from 300 beats the 5.0 from 2; no opening comes last");
    assert_eq!(page.total, 3);
    assert!((page.hits[0].distance_km.unwrap() - 1.11).abs() < 0.05);
    // Paging.
    let second = search(&SearchQuery { per_page: 1, page: 1, ..q.clone() }, now, candidates());
    assert_eq!((second.hits.len(), &second.hits[0].provider, second.total), (1, &few.id, 3));
    // Without a radius the far one is in, and its earlier opening does not beat 290 km.
    let all = search(&SearchQuery { radius_km: None, ..q.clone() }, now, candidates());
    assert_eq!(all.hits.last().unwrap().provider, none.id);
    assert_eq!(all.hits[all.hits.len() - 2].provider, far.id);
    // Rating and language filters.
    let rated = search(&SearchQuery { min_rating: Some(4.5), ..q.clone() }, now, candidates());
    assert_eq!(rated.hits.iter().map(|h| &h.provider).collect::<Vec<_>>(), [&many.id, &none.id]);
    assert_eq!(search(&SearchQuery { language: Some("tr".into()), ..q }, now, candidates()).total, 0);
}

fn opening(p: &Provider, start: DateTime<Utc>, insurance: Vec<InsuranceKind>) -> Opening {
    Opening {
        provider: p.id.clone(),
        start,
        end: start + Duration::minutes(30),
        visit_type: VisitType::FirstVisit,
        insurance,
        sources: vec![Provenance::Own],
    }
}

fn appointment(n: u128, p: &Provider, start: DateTime<Utc>, status: AppointmentStatus) -> Appointment {
    Appointment {
        id: AppointmentId::from_u128(n),
        patient: HealthId::from_number(7),
        provider: p.id.clone(),
        start,
        end: start + Duration::minutes(30),
        visit_type: VisitType::FirstVisit,
        status,
        booked_at: start - Duration::days(20),
        status_changed_at: start - Duration::days(20),
    }
}

#[test]
fn booking_rules_refuse_with_stable_codes() {
    let now = utc("2026-11-30T08:00:00Z");
    let p = mueller();
    let policy = Policy::default();
    let code = |r: carelens_booking::Result<()>| match r {
        Err(BookingError::Refused { code, .. }) => code,
        Err(e) => panic!("{e}"),
        Ok(()) => "ok",
    };
    let st = InsuranceKind::Statutory;
    assert_eq!(code(policy.check(now, &opening(&p, now + Duration::days(2), vec![]), &p, st, &[])), "ok");
    assert_eq!(
        code(policy.check(now, &opening(&p, now + Duration::minutes(90), vec![]), &p, st, &[])),
        "too_short_notice"
    );
    assert_eq!(code(policy.check(now, &opening(&p, now + Duration::days(91), vec![]), &p, st, &[])), "beyond_horizon");
    let private_slot = opening(&p, now + Duration::days(2), vec![InsuranceKind::Private]);
    assert_eq!(code(policy.check(now, &private_slot, &p, st, &[])), "insurance_not_accepted");
    let held: Vec<Appointment> =
        (0..5).map(|i| appointment(i, &p, now + Duration::days(i as i64 + 1), AppointmentStatus::Booked)).collect();
    assert_eq!(
        code(policy.check(now, &opening(&p, now + Duration::days(9), vec![]), &p, st, &held)),
        "too_many_bookings"
    );
    // Cancelled and past appointments do not count.
    let mut spent = held.clone();
    spent[0].status = AppointmentStatus::Cancelled;
    spent[1].start = now - Duration::days(3);
    assert_eq!(code(policy.check(now, &opening(&p, now + Duration::days(9), vec![]), &p, st, &spent)), "ok");
}

#[test]
fn reminders_and_calendar_file() {
    let p = mueller();
    let now = utc("2026-11-30T08:00:00Z");
    let a = appointment(42, &p, utc("2026-12-01T09:00:00Z"), AppointmentStatus::Booked);
    let plan = notify::schedule(&a, now);
    assert_eq!(
        plan,
        [
            (MessageKind::Confirmation, now),
            (MessageKind::Reminder24h, utc("2026-11-30T09:00:00Z")),
            (MessageKind::Reminder2h, utc("2026-12-01T07:00:00Z")),
        ]
    );
    // Booked 3 hours ahead: no 24-hour reminder.
    let late = notify::schedule(&a, utc("2026-12-01T06:00:00Z"));
    assert_eq!(late.iter().map(|m| m.0).collect::<Vec<_>>(), [MessageKind::Confirmation, MessageKind::Reminder2h]);
    assert_eq!(
        notify::subject(MessageKind::Reminder24h, &p, &a),
        "Reminder: appointment tomorrow, Tue 01.12.2026 10:00"
    );
    let ics = notify::ics(&a, &p, now, false);
    assert!(ics.starts_with("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n"), "{ics}");
    assert!(ics.contains("\r\nDTSTART:20261201T090000Z\r\nDTEND:20261201T093000Z\r\n"), "{ics}");
    assert!(ics.contains(&format!("UID:{}@carelens", a.id)));
    assert!(ics.contains("LOCATION:Hauptstr. 12\\, 10117 Berlin"), "{ics}");
    assert!(ics.ends_with("END:VCALENDAR\r\n"));
    assert!(ics.split("\r\n").all(|l| l.len() <= 75), "{ics}");
    assert!(!ics.contains(a.patient.as_str()));
    let cancel = notify::ics(&a, &p, now, true);
    assert!(cancel.contains("METHOD:CANCEL") && cancel.contains("STATUS:CANCELLED") && cancel.contains("SEQUENCE:1"));
    // Long names fold at 75 octets without splitting a character.
    let mut long = p.clone();
    long.name = "Ärztliche Gemeinschaftspraxis für Innere Medizin und Kardiologie Dr. med. Müller-Lüdenscheidt".into();
    let folded = notify::ics(&a, &long, now, false);
    assert!(folded.split("\r\n").all(|l| l.len() <= 75));
    assert!(folded.replace("\r\n ", "").contains("Müller-Lüdenscheidt"));
}

#[test]
fn idempotency_keys_map_to_one_appointment_id_per_patient() {
    let (p, q) = (HealthId::from_number(1), HealthId::from_number(2));
    let id = carelens_booking::appointment_id(&p, "retry-me");
    assert_eq!(id, carelens_booking::appointment_id(&p, "retry-me"));
    assert_ne!(id, carelens_booking::appointment_id(&q, "retry-me"));
    assert_ne!(id, carelens_booking::appointment_id(&p, "retry-me-2"));
    assert_eq!(id.to_string().as_bytes()[14], b'8', "{id}");
}
