//! The analytics snapshot: the store's histories, appointments, capacity, prediction sets and
//! feedback as pseudonymised Parquet in the Hive layout (zstd), with a manifest. KPIs read
//! snapshots, never the operational store.
//!
//! Partitioning: appointments, capacity, prediction sets and feedback by `year`/`month` (they
//! are dated near the present and KPIs window them by month); history events by `kind`/`year`
//! (a history spans a lifetime, and every KPI filters on the kind: a month level made tens of
//! thousands of files of a few hundred rows and scans twenty times slower). One file per
//! partition: each is written by a writer kept open over the whole export, a row group per
//! buffered chunk.
//!
//! Pseudonymised means: patients are an HMAC of their Health ID (`pid`, 16 hex characters),
//! there are no names and no birth dates (age in completed years at `as_of`, its ESP 2013 band,
//! and birth year for vaccination cohorts), and residence is the region only.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use carelens_domain::{
    Appointment, AppointmentStatus, ClinicalStatus, Feedback, HistoryEntry, HistoryKind, Patient, PredictionSet,
    Provider, ScheduleRule, Verdict,
};
use chrono::{Datelike, NaiveDate};
use hmac::{Hmac, Mac};
use polars::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{AnalyticsError, Result, file_error};
use crate::stats::age_band;

/// The snapshot layout this version writes and reads.
pub const SCHEMA_VERSION: u32 = 2;
/// The manifest's `format` value.
pub const FORMAT: &str = "carelens-analytics-snapshot";
pub const MANIFEST: &str = "manifest.json";
/// The tables of a snapshot, in manifest order.
pub const TABLES: [&str; 6] = ["patients", "events", "appointments", "capacity", "predictions", "feedback"];
/// Buffered rows (all tables) before they are written as row groups: bounds memory.
const FLUSH_ROWS: usize = 1_000_000;
/// Part files kept open at once; past this every open file is finished and later rows of a
/// partition go to its next part file (bounded file handles for any number of partitions).
const MAX_OPEN_FILES: usize = 768;

/// The Hive partition columns of a snapshot table, outermost first.
pub fn partition_columns(table: &str) -> &'static [&'static str] {
    match table {
        "patients" => &[],
        "events" => &["kind", "year"],
        _ => &["year", "month"],
    }
}

/// What the snapshot says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub schema_version: u32,
    /// The reference date: ages are in completed years on this day, and it is the default
    /// end of every KPI window.
    pub as_of: NaiveDate,
    pub created_at: String,
    /// `per-snapshot` (a random key: pseudonyms do not link across snapshots) or `stable`
    /// (the key came from the environment).
    pub pseudonyms: String,
    pub tables: BTreeMap<String, TableManifest>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TableManifest {
    /// Hive partition columns (see [`partition_columns`]), empty for unpartitioned tables.
    pub partitioned_by: Vec<String>,
    pub rows: u64,
    pub files: Vec<FileEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Relative to the snapshot directory, `/`-separated.
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
    /// Where the file is in the object store, once uploaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_key: Option<String>,
}

impl Manifest {
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(|e| file_error(&path, e))?;
        Self::parse(&text, &path)
    }

    /// Parses and checks a manifest's format and schema version; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        #[derive(Deserialize)]
        struct Head {
            format: Option<String>,
            schema_version: Option<u32>,
        }
        let head: Head =
            serde_json::from_str(text).map_err(|e| file_error(path, format!("not a snapshot manifest ({e})")))?;
        if head.format.as_deref() != Some(FORMAT) {
            return Err(file_error(path, format!("not a snapshot manifest (format is not `{FORMAT}`)")));
        }
        let found = head.schema_version.unwrap_or(0);
        if found < SCHEMA_VERSION {
            return Err(AnalyticsError::OlderSchema { path: path.into(), found, expected: SCHEMA_VERSION });
        }
        if found > SCHEMA_VERSION {
            return Err(AnalyticsError::NewerSchema { path: path.into(), found, expected: SCHEMA_VERSION });
        }
        serde_json::from_str(text).map_err(|e| file_error(path, format!("malformed manifest ({e})")))
    }

    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(MANIFEST);
        let text = serde_json::to_string_pretty(self).map_err(|e| file_error(&path, e))?;
        std::fs::write(&path, text).map_err(|e| file_error(&path, e))
    }

    pub fn files(&self) -> impl Iterator<Item = &FileEntry> {
        self.tables.values().flat_map(|t| &t.files)
    }

    pub fn files_mut(&mut self) -> impl Iterator<Item = &mut FileEntry> {
        self.tables.values_mut().flat_map(|t| &mut t.files)
    }

    /// The day the snapshot was written (from `created_at`).
    pub fn created_on(&self) -> Option<NaiveDate> {
        self.created_at.get(..10).and_then(|d| d.parse().ok())
    }

    /// Rows over all tables.
    pub fn rows(&self) -> u64 {
        self.tables.values().map(|t| t.rows).sum()
    }
}

/// One patient's records, as the store holds them.
pub struct PatientRecord<'a> {
    pub patient: &'a Patient,
    pub history: &'a [HistoryEntry],
    pub appointments: &'a [Appointment],
    pub prediction_sets: &'a [PredictionSet],
    pub feedback: &'a [Feedback],
}

fn days(d: NaiveDate) -> i32 {
    (d - NaiveDate::default()).num_days() as i32
}

fn years_between(birth: NaiveDate, on: NaiveDate) -> i32 {
    let mut y = on.year() - birth.year();
    if (on.month(), on.day()) < (birth.month(), birth.day()) {
        y -= 1;
    }
    y.max(0)
}

fn is_attended(s: AppointmentStatus) -> bool {
    matches!(s, AppointmentStatus::Completed | AppointmentStatus::CheckedIn)
}

#[derive(Default)]
struct PatientCols {
    pid: Vec<String>,
    sex: Vec<&'static str>,
    age: Vec<i32>,
    age_band: Vec<&'static str>,
    birth_year: Vec<i32>,
    region: Vec<String>,
    insurance: Vec<&'static str>,
}

#[derive(Default)]
struct EventCols {
    pid: Vec<String>,
    date: Vec<i32>,
    year: Vec<i32>,
    month: Vec<i32>,
    kind: Vec<&'static str>,
    category: Vec<&'static str>,
    code: Vec<Option<String>>,
    code3: Vec<Option<String>>,
    chapter: Vec<Option<&'static str>>,
    status: Vec<Option<&'static str>>,
    age: Vec<i32>,
    dose: Vec<Option<i32>>,
    until: Vec<Option<i32>>,
    is_first: Vec<Option<bool>>,
    prev_date: Vec<Option<i32>>,
    gap_days: Vec<Option<i32>>,
    value: Vec<Option<f64>>,
}

#[derive(Default)]
struct AppointmentCols {
    pid: Vec<String>,
    provider: Vec<String>,
    specialty: Vec<&'static str>,
    region: Vec<String>,
    insurance: Vec<&'static str>,
    status: Vec<&'static str>,
    booked: Vec<i32>,
    start: Vec<i32>,
    year: Vec<i32>,
    month: Vec<i32>,
    wait_days: Vec<i32>,
    next_days: Vec<Option<i32>>,
}

#[derive(Default)]
struct PredictionCols {
    pid: Vec<String>,
    version: Vec<i32>,
    created: Vec<i32>,
    year: Vec<i32>,
    month: Vec<i32>,
    code: Vec<String>,
    code3: Vec<String>,
    probability: Vec<f64>,
    threshold: Vec<Option<f64>>,
    positive: Vec<bool>,
    known: Vec<bool>,
    latest: Vec<bool>,
}

#[derive(Default)]
struct FeedbackCols {
    pid: Vec<String>,
    code: Vec<String>,
    code3: Vec<String>,
    verdict: Vec<&'static str>,
    date: Vec<i32>,
    year: Vec<i32>,
    month: Vec<i32>,
}

fn date_col(name: &str, v: &[i32]) -> PolarsResult<Column> {
    Column::new(name.into(), v).cast(&DataType::Date)
}

fn opt_date_col(name: &str, v: &[Option<i32>]) -> PolarsResult<Column> {
    Column::new(name.into(), v).cast(&DataType::Date)
}

impl PatientCols {
    fn frame(&mut self) -> PolarsResult<DataFrame> {
        let s = std::mem::take(self);
        DataFrame::new_infer_height(vec![
            Column::new("pid".into(), s.pid),
            Column::new("sex".into(), s.sex),
            Column::new("age".into(), s.age),
            Column::new("age_band".into(), s.age_band),
            Column::new("birth_year".into(), s.birth_year),
            Column::new("region".into(), s.region),
            Column::new("insurance".into(), s.insurance),
        ])
    }
}

impl EventCols {
    fn frame(&mut self) -> PolarsResult<DataFrame> {
        let s = std::mem::take(self);
        DataFrame::new_infer_height(vec![
            Column::new("pid".into(), s.pid),
            date_col("date", &s.date)?,
            Column::new("year".into(), s.year),
            Column::new("month".into(), s.month),
            Column::new("kind".into(), s.kind),
            Column::new("category".into(), s.category),
            Column::new("code".into(), s.code),
            Column::new("code3".into(), s.code3),
            Column::new("chapter".into(), s.chapter),
            Column::new("status".into(), s.status),
            Column::new("age".into(), s.age),
            Column::new("dose".into(), s.dose),
            opt_date_col("until", &s.until)?,
            Column::new("is_first".into(), s.is_first),
            opt_date_col("prev_date", &s.prev_date)?,
            Column::new("gap_days".into(), s.gap_days),
            Column::new("value".into(), s.value),
        ])
    }
}

impl AppointmentCols {
    fn frame(&mut self) -> PolarsResult<DataFrame> {
        let s = std::mem::take(self);
        DataFrame::new_infer_height(vec![
            Column::new("pid".into(), s.pid),
            Column::new("provider".into(), s.provider),
            Column::new("specialty".into(), s.specialty),
            Column::new("region".into(), s.region),
            Column::new("insurance".into(), s.insurance),
            Column::new("status".into(), s.status),
            date_col("booked", &s.booked)?,
            date_col("start", &s.start)?,
            Column::new("year".into(), s.year),
            Column::new("month".into(), s.month),
            Column::new("wait_days".into(), s.wait_days),
            Column::new("next_days".into(), s.next_days),
        ])
    }
}

impl PredictionCols {
    fn frame(&mut self) -> PolarsResult<DataFrame> {
        let s = std::mem::take(self);
        DataFrame::new_infer_height(vec![
            Column::new("pid".into(), s.pid),
            Column::new("version".into(), s.version),
            date_col("created", &s.created)?,
            Column::new("year".into(), s.year),
            Column::new("month".into(), s.month),
            Column::new("code".into(), s.code),
            Column::new("code3".into(), s.code3),
            Column::new("probability".into(), s.probability),
            Column::new("threshold".into(), s.threshold),
            Column::new("positive".into(), s.positive),
            Column::new("known".into(), s.known),
            Column::new("latest".into(), s.latest),
        ])
    }
}

impl FeedbackCols {
    fn frame(&mut self) -> PolarsResult<DataFrame> {
        let s = std::mem::take(self);
        DataFrame::new_infer_height(vec![
            Column::new("pid".into(), s.pid),
            Column::new("code".into(), s.code),
            Column::new("code3".into(), s.code3),
            Column::new("verdict".into(), s.verdict),
            date_col("date", &s.date)?,
            Column::new("year".into(), s.year),
            Column::new("month".into(), s.month),
        ])
    }
}

fn capacity_frame(rows: &[(String, &'static str, String, i32, i32, i64)]) -> PolarsResult<DataFrame> {
    DataFrame::new_infer_height(vec![
        Column::new("provider".into(), rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>()),
        Column::new("specialty".into(), rows.iter().map(|r| r.1).collect::<Vec<_>>()),
        Column::new("region".into(), rows.iter().map(|r| r.2.as_str()).collect::<Vec<_>>()),
        Column::new("year".into(), rows.iter().map(|r| r.3).collect::<Vec<_>>()),
        Column::new("month".into(), rows.iter().map(|r| r.4).collect::<Vec<_>>()),
        Column::new("slots".into(), rows.iter().map(|r| r.5).collect::<Vec<_>>()),
    ])
}

/// An empty frame with `table`'s columns, for tables a snapshot has no files of.
pub fn empty_table(table: &str) -> Result<DataFrame> {
    Ok(match table {
        "patients" => PatientCols::default().frame()?,
        "events" => EventCols::default().frame()?,
        "appointments" => AppointmentCols::default().frame()?,
        "capacity" => capacity_frame(&[])?,
        "predictions" => PredictionCols::default().frame()?,
        "feedback" => FeedbackCols::default().frame()?,
        other => return Err(AnalyticsError::Invalid(format!("no snapshot table `{other}`"))),
    })
}

struct ProviderInfo {
    specialty: &'static str,
    region: String,
    rules: Vec<ScheduleRule>,
}

/// Writes a snapshot into an empty directory: rows are buffered, and every `FLUSH_ROWS` they
/// are appended as row groups to their partitions' open part files.
pub struct SnapshotWriter {
    dir: PathBuf,
    as_of: NaiveDate,
    key: Vec<u8>,
    stable: bool,
    /// Open part files by partition directory (`events/kind=diagnosis/year=2024`).
    open: BTreeMap<String, OpenPart>,
    /// How many part files each partition directory has had (names the next one).
    parts: HashMap<String, u32>,
    patients: PatientCols,
    events: EventCols,
    appointments: AppointmentCols,
    predictions: PredictionCols,
    feedback: FeedbackCols,
    providers: HashMap<String, ProviderInfo>,
    months: Option<(i32, i32)>,
    tables: BTreeMap<String, TableManifest>,
}

impl SnapshotWriter {
    /// `key` makes the pseudonyms (at least 16 bytes); `stable` says it came from
    /// configuration rather than being random for this snapshot.
    pub fn create(dir: &Path, as_of: NaiveDate, key: &[u8], stable: bool) -> Result<Self> {
        if key.len() < 16 {
            return Err(AnalyticsError::Invalid("the pseudonym key must have at least 16 bytes".into()));
        }
        if dir.exists() && std::fs::read_dir(dir).map_err(|e| file_error(dir, e))?.next().is_some() {
            return Err(file_error(dir, "the snapshot directory is not empty"));
        }
        std::fs::create_dir_all(dir).map_err(|e| file_error(dir, e))?;
        let tables = TABLES
            .iter()
            .map(|t| {
                let partitioned_by = partition_columns(t).iter().map(|c| c.to_string()).collect();
                (t.to_string(), TableManifest { partitioned_by, ..Default::default() })
            })
            .collect();
        Ok(Self {
            dir: dir.to_owned(),
            as_of,
            key: key.to_vec(),
            stable,
            open: BTreeMap::new(),
            parts: HashMap::new(),
            patients: PatientCols::default(),
            events: EventCols::default(),
            appointments: AppointmentCols::default(),
            predictions: PredictionCols::default(),
            feedback: FeedbackCols::default(),
            providers: HashMap::new(),
            months: None,
            tables,
        })
    }

    /// The pseudonym of a Health ID under this snapshot's key.
    pub fn pseudonym(&self, id: &str) -> String {
        pseudonym(&self.key, id)
    }

    /// Providers (with their schedule rules) must be added before their appointments.
    pub fn add_provider(&mut self, provider: &Provider, rules: &[ScheduleRule]) {
        self.providers.insert(
            provider.id.as_str().to_owned(),
            ProviderInfo {
                specialty: provider.specialty.as_str(),
                region: provider.address.region.clone(),
                rules: rules.to_vec(),
            },
        );
    }

    pub fn add_patient(&mut self, rec: PatientRecord<'_>) -> Result<()> {
        let p = rec.patient;
        let pid = self.pseudonym(p.id.as_str());
        let age = years_between(p.birth_date, self.as_of);
        self.patients.pid.push(pid.clone());
        self.patients.sex.push(p.sex.as_str());
        self.patients.age.push(age);
        self.patients.age_band.push(age_band(age));
        self.patients.birth_year.push(p.birth_date.year());
        self.patients.region.push(p.residence.region.clone());
        self.patients.insurance.push(p.insurance.kind.as_str());

        let mut history: Vec<&HistoryEntry> = rec.history.iter().filter(|e| e.date <= self.as_of).collect();
        history.sort_by_key(|e| e.date);
        let mut seen_codes = std::collections::HashSet::new();
        let mut last_session: Option<NaiveDate> = None;
        for e in history {
            let ev = &mut self.events;
            let (kind, code3, chapter, status, dose, until, value) = match &e.kind {
                HistoryKind::Diagnosis(d) => {
                    let status = match d.status {
                        ClinicalStatus::Active => "active",
                        ClinicalStatus::Resolved => "resolved",
                    };
                    (
                        "diagnosis",
                        Some(d.code.category().to_owned()),
                        Some(d.code.chapter()),
                        Some(status),
                        None,
                        None,
                        None,
                    )
                }
                HistoryKind::Observation(o) => ("observation", None, None, None, None, None, Some(o.value)),
                HistoryKind::Vaccination(v) => {
                    ("vaccination", None, None, None, Some(i32::from(v.dose_number)), None, None)
                }
                HistoryKind::Allergy(_) => ("allergy", None, None, None, None, None, None),
                HistoryKind::Procedure(_) => ("procedure", None, None, None, None, None, None),
                HistoryKind::Medication(m) => ("medication", None, None, None, None, m.end.map(days), None),
                HistoryKind::PsychiatricMedication(m) => {
                    ("psychiatric_medication", None, None, None, None, m.end.map(days), None)
                }
                HistoryKind::TherapySession(_) => ("therapy_session", None, None, None, None, None, None),
                HistoryKind::ImagingStudy(_) => ("imaging_study", None, None, None, None, None, None),
            };
            let first = code3.as_ref().map(|c| seen_codes.insert(c.clone()));
            let (prev_date, gap_days) = if kind == "therapy_session" {
                let prev = last_session.replace(e.date);
                (prev.map(days), prev.map(|p| (e.date - p).num_days() as i32))
            } else {
                (None, None)
            };
            ev.pid.push(pid.clone());
            ev.date.push(days(e.date));
            ev.year.push(e.date.year());
            ev.month.push(e.date.month() as i32);
            ev.kind.push(kind);
            ev.category.push(e.category().as_str());
            ev.code.push(e.code().map(str::to_owned));
            ev.code3.push(code3);
            ev.chapter.push(chapter);
            ev.status.push(status);
            ev.age.push(years_between(p.birth_date, e.date));
            ev.dose.push(dose);
            ev.until.push(until);
            ev.is_first.push(first);
            ev.prev_date.push(prev_date);
            ev.gap_days.push(gap_days);
            ev.value.push(value);
        }

        let mut appts: Vec<&Appointment> = rec.appointments.iter().collect();
        appts.sort_by_key(|a| a.start);
        for (i, a) in appts.iter().enumerate() {
            let provider = self.providers.get(a.provider.as_str());
            let start = a.start.date_naive();
            let next_days = if is_attended(a.status) {
                appts[i + 1..]
                    .iter()
                    .find(|b| is_attended(b.status) && b.start > a.start)
                    .map(|b| (b.start.date_naive() - start).num_days() as i32)
            } else {
                None
            };
            let ym = (start.year(), start.month() as i32);
            self.months = Some(match self.months {
                None => (ym.0 * 12 + ym.1 - 1, ym.0 * 12 + ym.1 - 1),
                Some((lo, hi)) => (lo.min(ym.0 * 12 + ym.1 - 1), hi.max(ym.0 * 12 + ym.1 - 1)),
            });
            let ap = &mut self.appointments;
            ap.pid.push(pid.clone());
            ap.provider.push(a.provider.as_str().to_owned());
            ap.specialty.push(provider.map_or("unknown", |p| p.specialty));
            ap.region.push(provider.map_or_else(|| "unknown".to_owned(), |p| p.region.clone()));
            ap.insurance.push(p.insurance.kind.as_str());
            ap.status.push(a.status.as_str());
            ap.booked.push(days(a.booked_at.date_naive()));
            ap.start.push(days(start));
            ap.year.push(ym.0);
            ap.month.push(ym.1);
            ap.wait_days.push((start - a.booked_at.date_naive()).num_days() as i32);
            ap.next_days.push(next_days);
        }

        let latest = rec.prediction_sets.iter().map(|s| s.version).max();
        for set in rec.prediction_sets {
            let created = set.created_at.date_naive();
            for d in &set.predictions {
                let pr = &mut self.predictions;
                let p = d.probability.get();
                pr.pid.push(pid.clone());
                pr.version.push(set.version as i32);
                pr.created.push(days(created));
                pr.year.push(created.year());
                pr.month.push(created.month() as i32);
                pr.code.push(d.code.as_str().to_owned());
                pr.code3.push(d.code.category().to_owned());
                pr.probability.push(p);
                pr.threshold.push(d.threshold);
                pr.positive.push(p >= d.threshold.unwrap_or(0.5));
                pr.known.push(d.known);
                pr.latest.push(Some(set.version) == latest);
            }
        }
        for f in rec.feedback {
            let day = f.at.date_naive();
            let fb = &mut self.feedback;
            fb.pid.push(pid.clone());
            fb.code.push(f.code.as_str().to_owned());
            fb.code3.push(f.code.category().to_owned());
            fb.verdict.push(match f.verdict {
                Verdict::Confirmed => "confirmed",
                Verdict::Rejected => "rejected",
            });
            fb.date.push(days(day));
            fb.year.push(day.year());
            fb.month.push(day.month() as i32);
        }
        if self.buffered() >= FLUSH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn buffered(&self) -> usize {
        self.patients.pid.len()
            + self.events.pid.len()
            + self.appointments.pid.len()
            + self.predictions.pid.len()
            + self.feedback.pid.len()
    }

    /// Appends what is buffered to the part files.
    fn flush(&mut self) -> Result<()> {
        if self.buffered() == 0 {
            return Ok(());
        }
        let frames = [
            ("patients", self.patients.frame()?),
            ("events", self.events.frame()?),
            ("appointments", self.appointments.frame()?),
            ("predictions", self.predictions.frame()?),
            ("feedback", self.feedback.frame()?),
        ];
        for (table, df) in frames {
            self.write_table(table, df)?;
        }
        Ok(())
    }

    fn write_table(&mut self, table: &str, df: DataFrame) -> Result<()> {
        if df.height() == 0 {
            return Ok(());
        }
        let keys = partition_columns(table);
        let parts = if keys.is_empty() {
            vec![(table.to_owned(), df)]
        } else {
            let mut parts = Vec::new();
            for part in df.partition_by(keys.iter().copied(), true)? {
                let mut dir = table.to_owned();
                for k in keys {
                    let v = part.column(k)?.get(0)?;
                    let v = v.get_str().map_or_else(|| v.to_string(), str::to_owned);
                    dir.push_str(&format!("/{k}={v}"));
                }
                parts.push((dir, part.drop_many(keys.iter().copied())));
            }
            parts.sort_by(|a, b| a.0.cmp(&b.0));
            parts
        };
        for (dir, mut part) in parts {
            if !self.open.contains_key(&dir) && self.open.len() >= MAX_OPEN_FILES {
                self.close_all()?;
            }
            let open = match self.open.entry(dir) {
                std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::btree_map::Entry::Vacant(v) => {
                    let n = self.parts.entry(v.key().clone()).or_default();
                    let rel = format!("{}/part-{n:05}.parquet", v.key());
                    *n += 1;
                    v.insert(OpenPart::create(&self.dir, rel, part.schema())?)
                }
            };
            part.align_chunks();
            open.writer.write_batch(&part).map_err(|e| file_error(self.dir.join(&open.rel), e))?;
            open.rows += part.height() as u64;
        }
        Ok(())
    }

    /// Finishes every open part file and lists it in the manifest.
    fn close_all(&mut self) -> Result<()> {
        for (_, open) in std::mem::take(&mut self.open) {
            let table = open.rel.split('/').next().unwrap_or_default().to_owned();
            let entry = open.finish(&self.dir)?;
            let t = self.tables.entry(table).or_default();
            t.rows += entry.rows;
            t.files.push(entry);
        }
        Ok(())
    }

    /// Offered slots per provider and month, from the schedule rules, over the months that
    /// have appointments.
    fn capacity(&self) -> Vec<(String, &'static str, String, i32, i32, i64)> {
        let Some((lo, hi)) = self.months else { return vec![] };
        let mut ids: Vec<&String> = self.providers.keys().collect();
        ids.sort();
        let mut rows = Vec::new();
        for id in ids {
            let info = &self.providers[id];
            if info.rules.is_empty() {
                continue;
            }
            for m in lo..=hi {
                let (year, month) = (m / 12, (m % 12) as u32 + 1);
                let Some(first) = NaiveDate::from_ymd_opt(year, month, 1) else { continue };
                let mut slots = 0i64;
                let mut day = first;
                while day.month() == month {
                    for r in &info.rules {
                        let valid = r.valid_from <= day && r.valid_until.is_none_or(|u| day <= u);
                        if valid && r.weekday == day.weekday() && r.slot_minutes > 0 {
                            let minutes = (r.end - r.start).num_minutes().max(0);
                            slots += minutes / i64::from(r.slot_minutes);
                        }
                    }
                    let Some(next) = day.succ_opt() else { break };
                    day = next;
                }
                rows.push((id.clone(), info.specialty, info.region.clone(), year, month as i32, slots));
            }
        }
        rows
    }

    /// Writes the last rows, the capacity table and the manifest.
    pub fn finish(mut self) -> Result<Manifest> {
        self.flush()?;
        let cap = self.capacity();
        let df = capacity_frame(&cap)?;
        self.write_table("capacity", df)?;
        self.close_all()?;
        for t in self.tables.values_mut() {
            t.files.sort_by(|a, b| a.path.cmp(&b.path));
        }
        let manifest = Manifest {
            format: FORMAT.into(),
            schema_version: SCHEMA_VERSION,
            as_of: self.as_of,
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            pseudonyms: if self.stable { "stable" } else { "per-snapshot" }.into(),
            tables: std::mem::take(&mut self.tables),
        };
        manifest.write(&self.dir)?;
        Ok(manifest)
    }
}

/// The pseudonym of `id`: the first 16 hex characters of HMAC-SHA256(key, id).
pub fn pseudonym(key: &[u8], id: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else { unreachable!("HMAC takes keys of any length") };
    mac.update(id.as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..8])
}

/// A part file being written, a row group per flush.
struct OpenPart {
    /// Relative to the snapshot directory.
    rel: String,
    writer: polars::io::parquet::write::BatchedWriter<File>,
    rows: u64,
}

impl OpenPart {
    fn create(dir: &Path, rel: String, schema: &Schema) -> Result<Self> {
        let path = dir.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| file_error(parent, e))?;
        }
        let f = File::create(&path).map_err(|e| file_error(&path, e))?;
        let writer = ParquetWriter::new(f)
            .with_compression(ParquetCompression::Zstd(None))
            .with_statistics(StatisticsOptions::full())
            .batched(schema)
            .map_err(|e| file_error(&path, e))?;
        Ok(Self { rel, writer, rows: 0 })
    }

    fn finish(self, dir: &Path) -> Result<FileEntry> {
        let path = dir.join(&self.rel);
        self.writer.finish().map_err(|e| file_error(&path, e))?;
        drop(self.writer);
        let (sha256, bytes) = sha256_file(&path)?;
        Ok(FileEntry { path: self.rel, rows: self.rows, bytes, sha256, object_key: None })
    }
}

/// SHA-256 (hex) and length of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let f = File::open(path).map_err(|e| file_error(path, e))?;
    let mut r = BufReader::with_capacity(1 << 16, f);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf).map_err(|e| file_error(path, e))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex::encode(h.finalize()), n))
}

/// A snapshot directory, checked against its manifest, ready to query.
pub struct Snapshot {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl Snapshot {
    /// Reads the manifest and checks that every listed part file is there (sizes too).
    pub fn open(dir: &Path) -> Result<Self> {
        let manifest = Manifest::read(dir)?;
        for f in manifest.files() {
            let path = dir.join(&f.path);
            match std::fs::metadata(&path) {
                Ok(m) if m.len() == f.bytes => {}
                Ok(m) => {
                    return Err(file_error(
                        &path,
                        format!("has {} bytes, the manifest says {}; export the snapshot again", m.len(), f.bytes),
                    ));
                }
                Err(_) => return Err(AnalyticsError::MissingPartition { path }),
            }
        }
        for t in TABLES {
            if !manifest.tables.contains_key(t) {
                return Err(file_error(dir.join(MANIFEST), format!("lists no table `{t}`")));
            }
        }
        Ok(Self { dir: dir.to_owned(), manifest })
    }

    /// A lazy scan of one table (Hive partitions become columns).
    pub fn scan(&self, table: &str) -> Result<LazyFrame> {
        let Some(t) = self.manifest.tables.get(table) else {
            return Err(AnalyticsError::Invalid(format!("no snapshot table `{table}`")));
        };
        if t.files.is_empty() {
            return Ok(empty_table(table)?.lazy());
        }
        let paths: Vec<PlRefPath> =
            t.files.iter().map(|f| PlRefPath::try_from_path(&self.dir.join(&f.path))).collect::<PolarsResult<_>>()?;
        // The partition columns get the written types (not whatever parses from the path),
        // declared rather than cast so that filters on them still prune partitions.
        let keys = partition_columns(table);
        let hive_options = if keys.is_empty() {
            HiveOptions::new_disabled()
        } else {
            let schema: Schema = keys
                .iter()
                .map(|c| {
                    let dtype = if matches!(*c, "year" | "month") { DataType::Int32 } else { DataType::String };
                    Field::new((*c).into(), dtype)
                })
                .collect();
            HiveOptions { schema: Some(Arc::new(schema)), try_parse_dates: false, ..HiveOptions::new_enabled() }
        };
        let args = ScanArgsParquet { hive_options, ..Default::default() };
        Ok(LazyFrame::scan_parquet_files(paths.into_iter().collect(), args)?)
    }
}
