//! External availability feeds, normalised. Two platforms with deliberately different shapes:
//!
//! - **Doctolib-style** (`Platform::Doctolib`): `agendas[]`, each with a `practitioner`
//!   (`id`, `first_name`, `last_name`), a `place` (`address`, `zipcode`, `city`),
//!   `visit_motives[]` (`id`, `name`, optional `kind`, `duration_minutes`, optional
//!   `insurance`: `public`/`private`) and `availabilities[]` of `{date, slots: [{start_date,
//!   visit_motive_id}]}` with RFC 3339 times carrying their UTC offset.
//! - **Jameda-style** (`Platform::Jameda`): `praxen[]`, each with an `anschrift` (`strasse`,
//!   `plz`, `ort`), `aerzte[]` (`arzt_ref`, `name` with titles) and `kalender[]` entries
//!   `{arzt_ref, tag: "dd.mm.yyyy", uhrzeiten: ["HH:MM"], dauer, terminart, versicherung}`
//!   in local time (Europe/Berlin), German labels.
//!
//! A feed that is not JSON or lacks its top-level list is an error; everything below that is
//! per entry: a bad entry becomes a [`FeedProblem`] naming its JSON path, and the rest of the
//! feed is still read.

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Europe::Berlin;
use serde_json::Value;

use carelens_domain::{InsuranceKind, VisitType};

use crate::error::{BookingError, Result};
use crate::normalise::PractitionerKey;

/// Feeds larger than this are refused before parsing (bounded memory).
pub const MAX_FEED_BYTES: usize = 64 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Platform {
    Doctolib,
    Jameda,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Doctolib => "doctolib",
            Self::Jameda => "jameda",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Doctolib, Self::Jameda].into_iter().find(|p| p.as_str() == s)
    }
}

/// One bookable time as a platform lists it, in UTC.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedOpening {
    pub platform: Platform,
    /// The practitioner's id on the platform (`doctolib:991`, `jameda:jm-4711/a1`).
    pub external_id: String,
    pub practitioner: PractitionerKey,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub visit_type: VisitType,
    /// Insurance kinds the opening is for; empty means any.
    pub insurance: Vec<InsuranceKind>,
}

/// A feed entry that was skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedProblem {
    /// JSON path of the entry, e.g. `agendas[2].availabilities[0].slots[3].start_date`.
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for FeedProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ParsedFeed {
    pub platform: Platform,
    pub openings: Vec<FeedOpening>,
    pub problems: Vec<FeedProblem>,
}

/// Reads a feed of `platform`; `name` (a file or URL) names it in errors.
pub fn parse(platform: Platform, name: &str, bytes: &[u8]) -> Result<ParsedFeed> {
    let fail = |message: String| BookingError::Feed { feed: name.to_owned(), message };
    if bytes.len() > MAX_FEED_BYTES {
        return Err(fail(format!("{} bytes is over the {MAX_FEED_BYTES}-byte limit for a feed", bytes.len())));
    }
    let root: Value = serde_json::from_slice(bytes).map_err(|e| fail(format!("not JSON ({e})")))?;
    let mut out = ParsedFeed { platform, openings: Vec::new(), problems: Vec::new() };
    match platform {
        Platform::Doctolib => {
            let agendas = root.get("agendas").and_then(Value::as_array).ok_or_else(|| {
                fail("no `agendas` list: is this a Doctolib-style feed? (Jameda-style feeds have `praxen`)".into())
            })?;
            for (i, a) in agendas.iter().enumerate() {
                doctolib_agenda(a, &format!("agendas[{i}]"), &mut out);
            }
        }
        Platform::Jameda => {
            let praxen = root.get("praxen").and_then(Value::as_array).ok_or_else(|| {
                fail("no `praxen` list: is this a Jameda-style feed? (Doctolib-style feeds have `agendas`)".into())
            })?;
            for (i, p) in praxen.iter().enumerate() {
                jameda_praxis(p, &format!("praxen[{i}]"), &mut out);
            }
        }
    }
    Ok(out)
}

type Entry<T> = std::result::Result<T, FeedProblem>;

fn problem(path: impl Into<String>, message: impl Into<String>) -> FeedProblem {
    FeedProblem { path: path.into(), message: message.into() }
}

fn str_at<'a>(v: &'a Value, path: &str, key: &str) -> Entry<&'a str> {
    match v.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim()),
        Some(Value::String(_)) => Err(problem(format!("{path}.{key}"), "is empty")),
        Some(other) => Err(problem(format!("{path}.{key}"), format!("must be a string, not {}", kind(other)))),
        None => Err(problem(format!("{path}.{key}"), "is missing")),
    }
}

/// An id the platform may send as a number or a string.
fn id_at(v: &Value, path: &str, key: &str) -> Entry<String> {
    match v.get(key) {
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
        Some(other) => Err(problem(format!("{path}.{key}"), format!("must be an id, not {}", kind(other)))),
        None => Err(problem(format!("{path}.{key}"), "is missing")),
    }
}

fn array_at<'a>(v: &'a Value, path: &str, key: &str) -> Entry<&'a [Value]> {
    match v.get(key) {
        Some(Value::Array(a)) => Ok(a),
        Some(other) => Err(problem(format!("{path}.{key}"), format!("must be a list, not {}", kind(other)))),
        None => Err(problem(format!("{path}.{key}"), "is missing")),
    }
}

fn minutes_at(v: &Value, path: &str, key: &str) -> Entry<i64> {
    match v.get(key).and_then(Value::as_i64) {
        Some(m) if (5..=480).contains(&m) => Ok(m),
        Some(m) => Err(problem(format!("{path}.{key}"), format!("{m} minutes is outside 5..=480"))),
        None => Err(problem(format!("{path}.{key}"), "must be a whole number of minutes")),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A visit type from a platform's label (English kind or German appointment type).
pub fn visit_type_from_label(label: &str) -> Option<VisitType> {
    let l = carelens_domain::places::fold(label);
    let has = |words: &[&str]| words.iter().any(|w| l.contains(w));
    Some(if has(&["video", "online", "tele"]) {
        VisitType::Video
    } else if has(&["first", "erst", "neupatient"]) {
        VisitType::FirstVisit
    } else if has(&["follow", "folge", "kontroll", "wiedervorstellung", "befundbesprechung"]) {
        VisitType::FollowUp
    } else if has(&["acute", "akut", "notfall", "sprechstunde"]) {
        VisitType::Acute
    } else if has(&["check", "vorsorge", "untersuchung", "impf"]) {
        VisitType::Checkup
    } else {
        return None;
    })
}

fn insurance_from(v: Option<&Value>, path: &str) -> Entry<Vec<InsuranceKind>> {
    let Some(v) = v else { return Ok(vec![]) };
    let items = v.as_array().ok_or_else(|| problem(path, format!("must be a list, not {}", kind(v))))?;
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let s = item.as_str().map(carelens_domain::places::fold).unwrap_or_default();
        let k = match s.as_str() {
            "public" | "gesetzlich" | "gkv" | "kasse" | "kassenpatient" => InsuranceKind::Statutory,
            "private" | "privat" | "pkv" | "privatpatient" | "selbstzahler" => InsuranceKind::Private,
            _ => return Err(problem(format!("{path}[{i}]"), format!("unknown insurance `{item}`"))),
        };
        if !out.contains(&k) {
            out.push(k);
        }
    }
    Ok(out)
}

struct Motive {
    id: String,
    visit_type: VisitType,
    minutes: i64,
    insurance: Vec<InsuranceKind>,
}

fn doctolib_agenda(a: &Value, path: &str, out: &mut ParsedFeed) {
    let head = (|| {
        let pr = a.get("practitioner").ok_or_else(|| problem(format!("{path}.practitioner"), "is missing"))?;
        let ppath = format!("{path}.practitioner");
        let id = id_at(pr, &ppath, "id")?;
        let last = str_at(pr, &ppath, "last_name")?;
        let place = a.get("place").ok_or_else(|| problem(format!("{path}.place"), "is missing"))?;
        let lpath = format!("{path}.place");
        let key = PractitionerKey::new(last, str_at(place, &lpath, "address")?, str_at(place, &lpath, "zipcode")?);
        Ok::<_, FeedProblem>((format!("doctolib:{id}"), key))
    })();
    let (external_id, key) = match head {
        Ok(h) => h,
        Err(p) => return out.problems.push(p),
    };
    let mut motives = Vec::new();
    match array_at(a, path, "visit_motives") {
        Ok(list) => {
            for (i, m) in list.iter().enumerate() {
                let mpath = format!("{path}.visit_motives[{i}]");
                let motive = (|| {
                    let id = id_at(m, &mpath, "id")?;
                    let label = m.get("kind").and_then(Value::as_str).or_else(|| m.get("name").and_then(Value::as_str));
                    let visit_type = label.and_then(visit_type_from_label).ok_or_else(|| {
                        problem(format!("{mpath}.kind"), format!("no known visit type in {:?}", label.unwrap_or("")))
                    })?;
                    let minutes = minutes_at(m, &mpath, "duration_minutes")?;
                    let insurance = insurance_from(m.get("insurance"), &format!("{mpath}.insurance"))?;
                    Ok::<_, FeedProblem>(Motive { id, visit_type, minutes, insurance })
                })();
                match motive {
                    Ok(m) => motives.push(m),
                    Err(p) => out.problems.push(p),
                }
            }
        }
        Err(p) => return out.problems.push(p),
    }
    let days = match array_at(a, path, "availabilities") {
        Ok(d) => d,
        Err(p) => return out.problems.push(p),
    };
    for (d, day) in days.iter().enumerate() {
        let dpath = format!("{path}.availabilities[{d}]");
        let slots = match array_at(day, &dpath, "slots") {
            Ok(s) => s,
            Err(p) => {
                out.problems.push(p);
                continue;
            }
        };
        for (s, slot) in slots.iter().enumerate() {
            let spath = format!("{dpath}.slots[{s}]");
            let opening = (|| {
                let raw = str_at(slot, &spath, "start_date")?;
                let start = DateTime::parse_from_rfc3339(raw)
                    .map_err(|e| {
                        problem(
                            format!("{spath}.start_date"),
                            format!("`{raw}` is not an RFC 3339 time with offset ({e})"),
                        )
                    })?
                    .with_timezone(&Utc);
                let motive_id = id_at(slot, &spath, "visit_motive_id")?;
                let m = motives.iter().find(|m| m.id == motive_id).ok_or_else(|| {
                    problem(format!("{spath}.visit_motive_id"), format!("no visit motive {motive_id} in this agenda"))
                })?;
                Ok::<_, FeedProblem>(FeedOpening {
                    platform: Platform::Doctolib,
                    external_id: external_id.clone(),
                    practitioner: key.clone(),
                    start,
                    end: start + chrono::Duration::minutes(m.minutes),
                    visit_type: m.visit_type,
                    insurance: m.insurance.clone(),
                })
            })();
            match opening {
                Ok(o) => out.openings.push(o),
                Err(p) => out.problems.push(p),
            }
        }
    }
}

/// A local Europe/Berlin wall-clock time in UTC. In the autumn hour that happens twice the
/// earlier one is meant; the spring hour that does not exist is an error.
pub fn berlin_to_utc(date: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
    Berlin.from_local_datetime(&date.and_time(time)).earliest().map(|t| t.with_timezone(&Utc))
}

fn jameda_praxis(p: &Value, path: &str, out: &mut ParsedFeed) {
    let head = (|| {
        let praxis_id = id_at(p, path, "praxis_id")?;
        let addr = p.get("anschrift").ok_or_else(|| problem(format!("{path}.anschrift"), "is missing"))?;
        let apath = format!("{path}.anschrift");
        Ok::<_, FeedProblem>((praxis_id, str_at(addr, &apath, "strasse")?, str_at(addr, &apath, "plz")?))
    })();
    let (praxis_id, street, plz) = match head {
        Ok(h) => h,
        Err(p) => return out.problems.push(p),
    };
    let mut doctors = Vec::new();
    match array_at(p, path, "aerzte") {
        Ok(list) => {
            for (i, d) in list.iter().enumerate() {
                let dpath = format!("{path}.aerzte[{i}]");
                match (id_at(d, &dpath, "arzt_ref"), str_at(d, &dpath, "name")) {
                    (Ok(r), Ok(name)) => doctors.push((r, PractitionerKey::new(name, street, plz))),
                    (Err(e), _) | (_, Err(e)) => out.problems.push(e),
                }
            }
        }
        Err(e) => return out.problems.push(e),
    }
    let entries = match array_at(p, path, "kalender") {
        Ok(k) => k,
        Err(e) => return out.problems.push(e),
    };
    for (j, k) in entries.iter().enumerate() {
        let kpath = format!("{path}.kalender[{j}]");
        let entry = (|| {
            let r = id_at(k, &kpath, "arzt_ref")?;
            let key = doctors.iter().find(|d| d.0 == r).map(|d| d.1.clone()).ok_or_else(|| {
                problem(format!("{kpath}.arzt_ref"), format!("no doctor `{r}` in this practice's `aerzte`"))
            })?;
            let tag = str_at(k, &kpath, "tag")?;
            let day = NaiveDate::parse_from_str(tag, "%d.%m.%Y")
                .map_err(|_| problem(format!("{kpath}.tag"), format!("`{tag}` is not a date like 01.12.2026")))?;
            let minutes = minutes_at(k, &kpath, "dauer")?;
            let label = str_at(k, &kpath, "terminart")?;
            let visit_type = visit_type_from_label(label)
                .ok_or_else(|| problem(format!("{kpath}.terminart"), format!("no known visit type in `{label}`")))?;
            let insurance = insurance_from(k.get("versicherung"), &format!("{kpath}.versicherung"))?;
            let times = array_at(k, &kpath, "uhrzeiten")?;
            Ok::<_, FeedProblem>((r, key, day, minutes, visit_type, insurance, times))
        })();
        let (r, key, day, minutes, visit_type, insurance, times) = match entry {
            Ok(e) => e,
            Err(e) => {
                out.problems.push(e);
                continue;
            }
        };
        for (t, time) in times.iter().enumerate() {
            let tpath = format!("{kpath}.uhrzeiten[{t}]");
            let Some(raw) = time.as_str() else {
                out.problems.push(problem(tpath, format!("must be a time like \"09:30\", not {}", kind(time))));
                continue;
            };
            let Ok(clock) = NaiveTime::parse_from_str(raw, "%H:%M") else {
                out.problems.push(problem(tpath, format!("`{raw}` is not a time like 09:30")));
                continue;
            };
            let Some(start) = berlin_to_utc(day, clock) else {
                out.problems.push(problem(
                    tpath,
                    format!("{tag} {raw} does not exist in Europe/Berlin (clocks go forward)", tag = day),
                ));
                continue;
            };
            out.openings.push(FeedOpening {
                platform: Platform::Jameda,
                external_id: format!("jameda:{praxis_id}/{r}"),
                practitioner: key.clone(),
                start,
                end: start + chrono::Duration::minutes(minutes),
                visit_type,
                insurance: insurance.clone(),
            });
        }
    }
}

/// A UTC time as Berlin wall-clock text, e.g. `Tue 01.12.2026 09:30`.
pub fn berlin_local(t: DateTime<Utc>) -> String {
    t.with_timezone(&Berlin).format("%a %d.%m.%Y %H:%M").to_string()
}
