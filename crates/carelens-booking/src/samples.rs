//! Sample feeds for the directory's own providers, in both platform shapes, for the demo and
//! for trying the import: some providers are listed on Doctolib, some on Jameda, some on both
//! (the same slots, so merging has duplicates to fold), and each feed carries the noise real
//! feeds have — a practitioner the directory does not know, a malformed time, an unknown visit
//! type — so the import report has something to say.

use std::collections::BTreeMap;

use chrono_tz::Europe::Berlin;
use serde_json::{Value, json};

use carelens_domain::{Provider, ProviderId, Slot, VisitType};

fn motive_kind(v: VisitType) -> (&'static str, &'static str) {
    match v {
        VisitType::FirstVisit => ("first_visit", "Erstbesuch"),
        VisitType::FollowUp => ("follow_up", "Folgetermin"),
        VisitType::Acute => ("acute", "Akutsprechstunde"),
        VisitType::Checkup => ("checkup", "Vorsorgeuntersuchung"),
        VisitType::Video => ("video", "Videosprechstunde"),
    }
}

/// The family name as written in a display name like `Praxis Dr. Weiß & Kollegen (Dermatologie)`.
fn family(p: &Provider) -> String {
    let key = crate::normalise::family_name(&p.name);
    let name = p.name.split('(').next().unwrap_or(&p.name);
    name.split(|c: char| !c.is_alphanumeric() && c != '-')
        .rfind(|w| carelens_domain::places::fold(w) == key)
        .unwrap_or(&key)
        .to_owned()
}

/// The Doctolib-style and Jameda-style feeds (JSON values) for `slots` of `providers`:
/// providers at even positions are on Doctolib, those at positions divisible by 3 on Jameda.
/// At most `per_provider` slots each.
pub fn feeds(providers: &[Provider], slots: &[Slot], per_provider: usize) -> (Value, Value) {
    let mut by_provider: BTreeMap<&ProviderId, Vec<&Slot>> = BTreeMap::new();
    for s in slots {
        let v = by_provider.entry(&s.provider).or_default();
        if v.len() < per_provider {
            v.push(s);
        }
    }
    let mut agendas = Vec::new();
    let mut praxen = Vec::new();
    for (i, p) in providers.iter().enumerate() {
        let Some(slots) = by_provider.get(&p.id) else { continue };
        if i % 2 == 0 {
            agendas.push(agenda(i, p, slots));
        }
        if i % 3 == 0 {
            praxen.push(praxis(i, p, slots));
        }
    }
    // Noise: a practitioner nobody knows, a time that is not a time, a visit type nobody knows.
    agendas.push(json!({
        "agenda_id": 999_001,
        "practitioner": { "id": 999_001, "first_name": "Lena", "last_name": "Unbekannt" },
        "place": { "address": "Nirgendwo 1", "zipcode": "99999", "city": "Nirgendwo" },
        "visit_motives": [ { "id": 1, "name": "Erstbesuch", "kind": "first_visit", "duration_minutes": 20 } ],
        "availabilities": [ { "date": "2026-12-01", "slots": [
            { "start_date": "2026-12-01T09:00:00+01:00", "visit_motive_id": 1 },
            { "start_date": "2026-12-01T9:30", "visit_motive_id": 1 }
        ] } ]
    }));
    if let Some(first) = praxen.first_mut()
        && let Some(kalender) = first.get_mut("kalender").and_then(Value::as_array_mut)
    {
        kalender.push(json!({ "arzt_ref": "a1", "tag": "01.12.2026", "uhrzeiten": ["10:00"], "dauer": 15, "terminart": "Beratungsgespräch" }));
    }
    (json!({ "agendas": agendas }), json!({ "praxen": praxen }))
}

fn agenda(i: usize, p: &Provider, slots: &[&Slot]) -> Value {
    let mut motives: Vec<VisitType> = slots.iter().map(|s| s.visit_type).collect();
    motives.sort();
    motives.dedup();
    let motive_id = |v: VisitType| motives.iter().position(|m| *m == v).unwrap_or(0) + 1;
    let minutes =
        |v: VisitType| slots.iter().find(|s| s.visit_type == v).map_or(15, |s| (s.end - s.start).num_minutes());
    let mut days: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for s in slots {
        let local = s.start.with_timezone(&Berlin);
        days.entry(local.format("%Y-%m-%d").to_string()).or_default().push(json!({
            "start_date": local.to_rfc3339_opts(chrono::SecondsFormat::Millis, false),
            "visit_motive_id": motive_id(s.visit_type),
        }));
    }
    json!({
        "agenda_id": 100_000 + i,
        "practitioner": { "id": 500_000 + i, "title": "Dr. med.", "first_name": "", "last_name": family(p) },
        "place": { "address": p.address.street, "zipcode": p.address.postcode, "city": p.address.city },
        "visit_motives": motives.iter().map(|v| json!({
            "id": motive_id(*v), "name": motive_kind(*v).1, "kind": motive_kind(*v).0, "duration_minutes": minutes(*v),
        })).collect::<Vec<_>>(),
        "availabilities": days.into_iter().map(|(date, slots)| json!({ "date": date, "slots": slots })).collect::<Vec<_>>(),
    })
}

fn praxis(i: usize, p: &Provider, slots: &[&Slot]) -> Value {
    // Jameda abbreviates streets and lists local wall-clock times per day and visit type.
    let street = p.address.street.replace("straße", "str.").replace("Straße", "Str.");
    let mut groups: BTreeMap<(String, VisitType, i64), Vec<String>> = BTreeMap::new();
    for s in slots {
        let local = s.start.with_timezone(&Berlin);
        groups
            .entry((local.format("%d.%m.%Y").to_string(), s.visit_type, (s.end - s.start).num_minutes()))
            .or_default()
            .push(local.format("%H:%M").to_string());
    }
    json!({
        "praxis_id": format!("jm-{}", 7000 + i),
        "bezeichnung": p.name,
        "anschrift": { "strasse": street, "plz": p.address.postcode, "ort": p.address.city },
        "aerzte": [ { "arzt_ref": "a1", "name": format!("Dr. med. {}", family(p)) } ],
        "kalender": groups.into_iter().map(|((tag, v, dauer), uhrzeiten)| json!({
            "arzt_ref": "a1", "tag": tag, "uhrzeiten": uhrzeiten, "dauer": dauer, "terminart": motive_kind(v).1,
            "versicherung": p.accepts.iter().map(|k| match k {
                carelens_domain::InsuranceKind::Statutory => "gesetzlich",
                carelens_domain::InsuranceKind::Private => "privat",
            }).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}
