//! The embedded default backend: one SQLite file in WAL mode.
//!
//! Each entity is a row with the columns we index on plus its canonical JSON in `body`, so
//! the schema stays small and other tools can still read it with `json_extract`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use carelens_domain::{
    Appointment, AppointmentId, AppointmentStatus, AuditCheckpoint, AuditEntry, CareTeam, CareTeamId, ConsentGrant,
    DocumentId, DocumentRef, Feedback, GroundTruth, HealthId, HistoryEntry, MessageState, MessageSubject, Opening,
    OutboxMessage, Patient, PracticeClosure, PredictionSet, Prescription, PrescriptionId, Provider, ProviderId, Review,
    ScheduleRule, User, UserId, Validate,
};
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::types::Value;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, Transaction, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::store::{AuditEvent, Booked, HistoryFilter, Page, PageRequest, Store, StoreCounts, WriteBatch};
use crate::{Result, StoreError};

/// Schema migrations, in order; `PRAGMA user_version` records how many have run.
const MIGRATIONS: &[&str] = &[
    // 1: everything issue #2 needs.
    r#"
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE patients (id TEXT PRIMARY KEY, body TEXT NOT NULL);
    CREATE TABLE history (
        id TEXT PRIMARY KEY, patient_id TEXT NOT NULL, category TEXT NOT NULL,
        date TEXT NOT NULL, code TEXT, body TEXT NOT NULL);
    CREATE INDEX history_patient_date ON history (patient_id, date);
    CREATE INDEX history_diagnosis_code ON history (code) WHERE category IN ('diagnosis', 'mental_health');
    CREATE TABLE ground_truth (
        patient_id TEXT NOT NULL, condition TEXT NOT NULL, body TEXT NOT NULL,
        PRIMARY KEY (patient_id, condition));
    CREATE TABLE providers (id TEXT PRIMARY KEY, specialty TEXT NOT NULL, body TEXT NOT NULL);
    CREATE TABLE reviews (id TEXT PRIMARY KEY, provider_id TEXT NOT NULL, body TEXT NOT NULL);
    CREATE INDEX reviews_provider ON reviews (provider_id);
    CREATE TABLE schedule_rules (id TEXT PRIMARY KEY, provider_id TEXT NOT NULL, body TEXT NOT NULL);
    CREATE INDEX schedule_rules_provider ON schedule_rules (provider_id);
    CREATE TABLE appointments (
        id TEXT PRIMARY KEY, patient_id TEXT NOT NULL, provider_id TEXT NOT NULL,
        start TEXT NOT NULL, status TEXT NOT NULL, holds_slot INTEGER NOT NULL, body TEXT NOT NULL);
    CREATE UNIQUE INDEX appointments_one_per_slot ON appointments (provider_id, start) WHERE holds_slot = 1;
    CREATE INDEX appointments_provider_start ON appointments (provider_id, start);
    CREATE INDEX appointments_patient ON appointments (patient_id);
    CREATE TABLE prediction_sets (
        id TEXT PRIMARY KEY, patient_id TEXT NOT NULL, version INTEGER NOT NULL,
        created_at TEXT NOT NULL, body TEXT NOT NULL, UNIQUE (patient_id, version));
    CREATE TABLE consents (id TEXT PRIMARY KEY, patient_id TEXT NOT NULL, body TEXT NOT NULL);
    CREATE INDEX consents_patient ON consents (patient_id);
    CREATE TABLE audit (seq INTEGER PRIMARY KEY, at TEXT NOT NULL, patient_id TEXT, body TEXT NOT NULL);
    CREATE TABLE documents (id TEXT PRIMARY KEY, patient_id TEXT NOT NULL, body TEXT NOT NULL);
    CREATE INDEX documents_patient ON documents (patient_id);
    "#,
    // 2: users and doctors' feedback (issue #6).
    r#"
    CREATE TABLE users (id TEXT PRIMARY KEY, username TEXT NOT NULL UNIQUE, body TEXT NOT NULL);
    CREATE TABLE feedback (id TEXT PRIMARY KEY, patient_id TEXT NOT NULL, at TEXT NOT NULL, body TEXT NOT NULL);
    CREATE INDEX feedback_patient ON feedback (patient_id, at);
    "#,
    // 3: booking (#8): every source's listings, and the merged openings patients book from.
    r#"
    CREATE TABLE listings (
        source TEXT NOT NULL, provider_id TEXT NOT NULL, start TEXT NOT NULL, body TEXT NOT NULL,
        PRIMARY KEY (source, provider_id, start)
    ) WITHOUT ROWID;
    CREATE TABLE openings (
        provider_id TEXT NOT NULL, start TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (provider_id, start)
    ) WITHOUT ROWID;
    CREATE INDEX openings_start ON openings (start, provider_id);
    "#,
    // 4: booking (#8): the notification outbox.
    r#"
    CREATE TABLE outbox (
        id TEXT PRIMARY KEY, appointment_id TEXT NOT NULL, state TEXT NOT NULL,
        next_attempt TEXT NOT NULL, leased_until TEXT, body TEXT NOT NULL);
    CREATE INDEX outbox_due ON outbox (next_attempt) WHERE state = 'pending';
    CREATE INDEX outbox_appointment ON outbox (appointment_id);
    "#,
    // 5: booking (#8): practice closures (vacations, training days).
    r#"
    CREATE TABLE closures (id TEXT PRIMARY KEY, provider_id TEXT NOT NULL, body TEXT NOT NULL);
    CREATE INDEX closures_provider ON closures (provider_id);
    "#,
    // 6: records (#9): signed checkpoints of the audit chain.
    r#"
    CREATE TABLE audit_checkpoints (seq INTEGER PRIMARY KEY, body TEXT NOT NULL);
    CREATE INDEX audit_patient ON audit (patient_id, seq) WHERE patient_id IS NOT NULL;
    "#,
    // 7: records (#9): e-prescriptions.
    r#"
    CREATE TABLE prescriptions (id TEXT PRIMARY KEY, patient_id TEXT NOT NULL, body TEXT NOT NULL);
    CREATE INDEX prescriptions_patient ON prescriptions (patient_id);
    "#,
    // 8: records (#9): care teams.
    r#"
    CREATE TABLE care_teams (id TEXT PRIMARY KEY, created_by TEXT NOT NULL, body TEXT NOT NULL);
    "#,
    // 9: records (#9): the outbox also holds a prescription's reminders, so its key column names
    // the message's subject: `appointment:<id>` or `prescription:<id>` (see `subject_key`).
    r#"
    ALTER TABLE outbox RENAME COLUMN appointment_id TO subject_id;
    UPDATE outbox SET subject_id = 'appointment:' || subject_id;
    "#,
];

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

const BACKEND: &str = "sqlite";

/// SQLite page cache per connection, MiB (allocated only as pages are used).
const CACHE_MIB: i64 = 256;

/// Page size of new databases, bytes.
const PAGE_SIZE: i64 = 16_384;

/// The embedded store: a SQLite database file.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).finish()
    }
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn to_json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Backend { backend: BACKEND, message: format!("encoding: {e}") })
}

fn from_json<T: DeserializeOwned>(entity: &'static str, id: &str, body: &str) -> Result<T> {
    serde_json::from_str(body).map_err(|source| StoreError::Decode { entity, id: id.to_owned(), source })
}

fn validate<T: Validate + ?Sized>(entity: &'static str, id: impl ToString, v: &T) -> Result<()> {
    v.validate().map_err(|source| StoreError::Invalid { entity, id: id.to_string(), source })
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it to [`SCHEMA_VERSION`].
    /// Refuses files written by a newer schema and files that are not SQLite databases.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(&path, flags).map_err(|e| open_error(&path, e))?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(|e| open_error(&path, e))?;
        // The first real read of the header is where a non-database file shows itself.
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| open_error(&path, e))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema { path, found: version, supported: SCHEMA_VERSION });
        }
        if version == 0 {
            // Only takes effect on a new, empty file: bigger pages mean fewer B-tree splits and
            // less WAL framing for the JSON bodies.
            conn.pragma_update(None, "page_size", PAGE_SIZE).map_err(|e| open_error(&path, e))?;
        }
        conn.pragma_update(None, "journal_mode", "WAL").map_err(|e| open_error(&path, e))?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(|e| open_error(&path, e))?;
        // Patient ids are deliberately unordered, so index inserts land on random pages; a page
        // cache that holds the hot indexes keeps bulk loads near-linear (the 2 MB default does not).
        conn.pragma_update(None, "cache_size", -(CACHE_MIB * 1024)).map_err(|e| open_error(&path, e))?;
        conn.pragma_update(None, "temp_store", "MEMORY").map_err(|e| open_error(&path, e))?;
        // Checkpoint every 64 MiB of WAL rather than 4 MiB: hot index pages are then copied into
        // the database once per checkpoint instead of once per transaction.
        conn.pragma_update(None, "wal_autocheckpoint", 16_384).map_err(|e| open_error(&path, e))?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction().map_err(|e| open_error(&path, e))?;
            tx.execute_batch(sql).map_err(|e| open_error(&path, e))?;
            tx.pragma_update(None, "user_version", (i + 1) as i64).map_err(|e| open_error(&path, e))?;
            tx.commit().map_err(|e| open_error(&path, e))?;
        }
        Ok(Self { conn: Arc::new(Mutex::new(conn)), path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with the connection on a blocking thread.
    async fn with_conn<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            f(&mut guard).map_err(|e| match e {
                StoreError::Backend { message, .. }
                    if message.contains("not a database") || message.contains("malformed") =>
                {
                    StoreError::Corrupt { path, detail: message }
                }
                other => other,
            })
        })
        .await
        .map_err(|e| StoreError::Backend { backend: BACKEND, message: format!("worker thread failed: {e}") })?
    }

    fn query_bodies<T: DeserializeOwned>(
        conn: &Connection,
        entity: &'static str,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<T>> {
        let mut stmt = conn.prepare_cached(sql).map_err(db)?;
        let rows = stmt.query_map(params, |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))).map_err(db)?;
        let mut out = Vec::new();
        for row in rows {
            let (id, body) = row.map_err(db)?;
            out.push(from_json(entity, &id, &body)?);
        }
        Ok(out)
    }

    fn page<T: DeserializeOwned>(
        conn: &Connection,
        entity: &'static str,
        table: &str,
        page: PageRequest,
    ) -> Result<Page<T>> {
        let limit = page.limit.clamp(1, 10_000);
        let after = page.after.unwrap_or_default();
        let sql = format!("SELECT id, body FROM {table} WHERE id > ?1 ORDER BY id LIMIT ?2");
        let mut stmt = conn.prepare_cached(&sql).map_err(db)?;
        let rows = stmt
            .query_map(params![after, limit + 1], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(db)?;
        let mut items = Vec::new();
        let mut last_id = None;
        let mut more = false;
        for row in rows {
            let (id, body) = row.map_err(db)?;
            if items.len() == limit as usize {
                more = true;
                break;
            }
            items.push(from_json(entity, &id, &body)?);
            last_id = Some(id);
        }
        let next = if more { last_id.map(|a| PageRequest { after: Some(a), limit }) } else { None };
        Ok(Page { items, next })
    }
}

fn open_error(path: &Path, e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            StoreError::Corrupt { path: path.to_path_buf(), detail: e.to_string() }
        }
        Some(ErrorCode::CannotOpen | ErrorCode::ReadOnly | ErrorCode::PermissionDenied) => StoreError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::PermissionDenied, e.to_string()),
        },
        _ => StoreError::Backend { backend: BACKEND, message: e.to_string() },
    }
}

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Backend { backend: BACKEND, message: e.to_string() }
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}

fn slot_key(a: &Appointment) -> String {
    format!("{}@{}", a.provider, ts(a.start))
}

/// The outbox's `subject_id`: the kind of subject and its id, so that an appointment and a
/// prescription with the same UUID never share messages.
fn subject_key(subject: &MessageSubject) -> String {
    match subject {
        MessageSubject::Appointment(a) => format!("appointment:{a}"),
        MessageSubject::Prescription(p) => format!("prescription:{p}"),
    }
}

/// Writes `m` with the conflict clause `on_conflict`; returns how many rows changed.
fn write_message(tx: &Transaction<'_>, m: &OutboxMessage, on_conflict: &str) -> Result<usize> {
    // Validated before every write, so this only guards against a future caller that forgets.
    let subject = m.subject().ok_or_else(|| StoreError::Backend {
        backend: BACKEND,
        message: format!("message {} is about neither one appointment nor one prescription", m.id),
    })?;
    let sql = format!(
        "INSERT INTO outbox (id, subject_id, state, next_attempt, leased_until, body) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) {on_conflict}"
    );
    tx.prepare_cached(&sql)
        .map_err(db)?
        .execute(params![
            m.id,
            subject_key(&subject),
            m.state.as_str(),
            ts(m.next_attempt),
            m.leased_until.map(ts),
            to_json(m)?
        ])
        .map_err(db)
}

fn write_appointment(tx: &Transaction<'_>, a: &Appointment) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO appointments (id, patient_id, provider_id, start, status, holds_slot, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (id) DO UPDATE SET patient_id = ?2, provider_id = ?3, start = ?4, status = ?5,
             holds_slot = ?6, body = ?7",
    )
    .map_err(db)?
    .execute(params![
        a.id.to_string(),
        a.patient.as_str(),
        a.provider.as_str(),
        ts(a.start),
        a.status.as_str(),
        a.status.holds_slot(),
        to_json(a)?
    ])
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::Conflict { entity: "appointment", key: slot_key(a), reason: "the slot is already booked" }
        } else {
            db(e)
        }
    })?;
    Ok(())
}

/// Runs `sql` once per item with the parameters `bind` gives it (one cached statement).
fn upsert_all<T, const N: usize>(
    conn: &Connection,
    sql: &str,
    items: &[T],
    bind: impl Fn(&T) -> Result<[Value; N]>,
) -> Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    let mut st = conn.prepare_cached(sql).map_err(db)?;
    for item in items {
        st.execute(rusqlite::params_from_iter(bind(item)?)).map_err(db)?;
    }
    Ok(())
}

fn text(s: impl Into<String>) -> Value {
    Value::Text(s.into())
}

/// `(id, <owner>, body)` tables keyed by id: reviews, schedule rules, consents, documents.
fn owned_upsert(table: &str, owner: &str) -> String {
    format!(
        "INSERT INTO {table} (id, {owner}, body) VALUES (?1, ?2, ?3) ON CONFLICT (id) DO UPDATE SET {owner} = ?2, body = ?3"
    )
}

fn write_batch(tx: &Transaction<'_>, b: &WriteBatch) -> Result<()> {
    upsert_all(
        tx,
        "INSERT INTO patients (id, body) VALUES (?1, ?2) ON CONFLICT (id) DO UPDATE SET body = ?2",
        &b.patients,
        |p| Ok([text(p.id.as_str()), text(to_json(p)?)]),
    )?;
    upsert_all(
        tx,
        "INSERT INTO history (id, patient_id, category, date, code, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (id) DO UPDATE SET patient_id = ?2, category = ?3, date = ?4, code = ?5, body = ?6",
        &b.history,
        |e| {
            Ok([
                text(e.id.to_string()),
                text(e.patient.as_str()),
                text(e.category().as_str()),
                text(e.date.to_string()),
                e.code().map_or(Value::Null, text),
                text(to_json(e)?),
            ])
        },
    )?;
    upsert_all(
        tx,
        "INSERT INTO ground_truth (patient_id, condition, body) VALUES (?1, ?2, ?3)
         ON CONFLICT (patient_id, condition) DO UPDATE SET body = ?3",
        &b.ground_truth,
        |g| Ok([text(g.patient.as_str()), text(g.condition.as_str()), text(to_json(g)?)]),
    )?;
    upsert_all(
        tx,
        "INSERT INTO providers (id, specialty, body) VALUES (?1, ?2, ?3)
         ON CONFLICT (id) DO UPDATE SET specialty = ?2, body = ?3",
        &b.providers,
        |p| Ok([text(p.id.as_str()), text(p.specialty.as_str()), text(to_json(p)?)]),
    )?;
    upsert_all(tx, &owned_upsert("reviews", "provider_id"), &b.reviews, |r| {
        Ok([text(r.id.to_string()), text(r.provider.as_str()), text(to_json(r)?)])
    })?;
    upsert_all(tx, &owned_upsert("schedule_rules", "provider_id"), &b.schedule_rules, |r| {
        Ok([text(r.id.to_string()), text(r.provider.as_str()), text(to_json(r)?)])
    })?;
    upsert_all(tx, &owned_upsert("closures", "provider_id"), &b.closures, |r| {
        Ok([text(r.id.to_string()), text(r.provider.as_str()), text(to_json(r)?)])
    })?;
    for a in &b.appointments {
        write_appointment(tx, a)?;
    }
    Ok(())
}

pub(crate) fn validate_batch(b: &WriteBatch) -> Result<()> {
    for p in &b.patients {
        validate("patient", &p.id, p)?;
    }
    for e in &b.history {
        validate("history entry", e.id, e)?;
    }
    for p in &b.providers {
        validate("provider", &p.id, p)?;
    }
    for r in &b.reviews {
        validate("review", r.id, r)?;
    }
    for r in &b.schedule_rules {
        validate("schedule rule", r.id, r)?;
    }
    for r in &b.closures {
        validate("closure", r.id, r)?;
    }
    for a in &b.appointments {
        validate("appointment", a.id, a)?;
    }
    Ok(())
}

fn count(conn: &Connection, sql: &str) -> Result<u64> {
    conn.query_row(sql, [], |r| r.get::<_, i64>(0)).map(|n| n as u64).map_err(db)
}

fn grouped(conn: &Connection, sql: &str) -> Result<std::collections::BTreeMap<String, u64>> {
    let mut stmt = conn.prepare(sql).map_err(db)?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))).map_err(db)?;
    rows.collect::<std::result::Result<_, _>>().map_err(db)
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn apply(&self, batch: WriteBatch) -> Result<()> {
        validate_batch(&batch)?;
        self.with_conn(move |conn| {
            let tx = conn.transaction().map_err(db)?;
            write_batch(&tx, &batch)?;
            tx.commit().map_err(db)
        })
        .await
    }

    async fn get_patient(&self, id: &HealthId) -> Result<Option<Patient>> {
        let id = id.clone();
        self.with_conn(move |c| {
            Ok(Self::query_bodies(c, "patient", "SELECT id, body FROM patients WHERE id = ?1", [id.as_str()])?.pop())
        })
        .await
    }

    async fn list_patients(&self, page: PageRequest) -> Result<Page<Patient>> {
        self.with_conn(move |c| Self::page(c, "patient", "patients", page)).await
    }

    async fn history(&self, patient: &HealthId, filter: &HistoryFilter) -> Result<Vec<HistoryEntry>> {
        let (patient, filter) = (patient.clone(), filter.clone());
        self.with_conn(move |c| {
            let from = filter.from.map(|d| d.to_string()).unwrap_or_default();
            let to = filter.to.map(|d| d.to_string()).unwrap_or_else(|| "9999-12-31".into());
            let all: Vec<HistoryEntry> = Self::query_bodies(
                c,
                "history entry",
                "SELECT id, body FROM history WHERE patient_id = ?1 AND date >= ?2 AND date <= ?3 ORDER BY date, id",
                params![patient.as_str(), from, to],
            )?;
            Ok(all.into_iter().filter(|e| filter.matches(e)).collect())
        })
        .await
    }

    async fn ground_truth(&self, patient: &HealthId) -> Result<Vec<GroundTruth>> {
        let patient = patient.clone();
        self.with_conn(move |c| {
            Self::query_bodies(
                c,
                "ground truth",
                "SELECT patient_id, body FROM ground_truth WHERE patient_id = ?1 ORDER BY condition",
                [patient.as_str()],
            )
        })
        .await
    }

    async fn get_provider(&self, id: &ProviderId) -> Result<Option<Provider>> {
        let id = id.clone();
        self.with_conn(move |c| {
            Ok(Self::query_bodies(c, "provider", "SELECT id, body FROM providers WHERE id = ?1", [id.as_str()])?.pop())
        })
        .await
    }

    async fn list_providers(&self, page: PageRequest) -> Result<Page<Provider>> {
        self.with_conn(move |c| Self::page(c, "provider", "providers", page)).await
    }

    async fn reviews_for(&self, provider: &ProviderId) -> Result<Vec<Review>> {
        let provider = provider.clone();
        self.with_conn(move |c| {
            let mut v: Vec<Review> = Self::query_bodies(
                c,
                "review",
                "SELECT id, body FROM reviews WHERE provider_id = ?1",
                [provider.as_str()],
            )?;
            v.sort_by_key(|a| (a.date, a.id));
            Ok(v)
        })
        .await
    }

    async fn schedule_rules_for(&self, provider: &ProviderId) -> Result<Vec<ScheduleRule>> {
        let provider = provider.clone();
        self.with_conn(move |c| {
            let mut v: Vec<ScheduleRule> = Self::query_bodies(
                c,
                "schedule rule",
                "SELECT id, body FROM schedule_rules WHERE provider_id = ?1",
                [provider.as_str()],
            )?;
            v.sort_by_key(|r| (r.weekday.num_days_from_monday(), r.start, r.id));
            Ok(v)
        })
        .await
    }

    async fn closures_for(&self, provider: &ProviderId) -> Result<Vec<PracticeClosure>> {
        let provider = provider.clone();
        self.with_conn(move |c| {
            let mut v: Vec<PracticeClosure> = Self::query_bodies(
                c,
                "closure",
                "SELECT id, body FROM closures WHERE provider_id = ?1",
                [provider.as_str()],
            )?;
            v.sort_by_key(|r| (r.from, r.id));
            Ok(v)
        })
        .await
    }

    async fn book(&self, appointment: &Appointment) -> Result<Booked> {
        validate("appointment", appointment.id, appointment)?;
        let a = appointment.clone();
        self.with_conn(move |c| {
            let tx = c.transaction().map_err(db)?;
            let stored: Option<Appointment> = Self::query_bodies(
                &tx,
                "appointment",
                "SELECT id, body FROM appointments WHERE id = ?1",
                [a.id.to_string()],
            )?
            .pop();
            if let Some(stored) = stored {
                return if Booked::same_request(&stored, &a) {
                    Ok(Booked { appointment: stored, created: false })
                } else {
                    Err(Booked::reused(&a))
                };
            }
            write_appointment(&tx, &a)?;
            tx.commit().map_err(db)?;
            Ok(Booked { appointment: a, created: true })
        })
        .await
    }

    async fn reschedule(&self, id: &AppointmentId, start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Appointment> {
        let id = *id;
        self.with_conn(move |c| {
            let tx = c.transaction().map_err(db)?;
            let mut a: Appointment = Self::query_bodies(
                &tx,
                "appointment",
                "SELECT id, body FROM appointments WHERE id = ?1",
                [id.to_string()],
            )?
            .pop()
            .ok_or_else(|| StoreError::NotFound { entity: "appointment", id: id.to_string() })?;
            Booked::check_movable(&a)?;
            a.start = start;
            a.end = end;
            validate("appointment", a.id, &a)?;
            // One row changes: the unique slot index refuses the move if the slot is held,
            // and the transaction rolls back with the old slot still held.
            write_appointment(&tx, &a)?;
            tx.commit().map_err(db)?;
            Ok(a)
        })
        .await
    }

    async fn set_appointment_status(
        &self,
        id: &AppointmentId,
        status: AppointmentStatus,
        at: DateTime<Utc>,
    ) -> Result<Appointment> {
        let id = *id;
        self.with_conn(move |c| {
            let tx = c.transaction().map_err(db)?;
            let mut a: Appointment = Self::query_bodies(
                &tx,
                "appointment",
                "SELECT id, body FROM appointments WHERE id = ?1",
                [id.to_string()],
            )?
            .pop()
            .ok_or_else(|| StoreError::NotFound { entity: "appointment", id: id.to_string() })?;
            a.transition(status, at).map_err(|source| StoreError::Invalid {
                entity: "appointment",
                id: id.to_string(),
                source,
            })?;
            write_appointment(&tx, &a)?;
            tx.commit().map_err(db)?;
            Ok(a)
        })
        .await
    }

    async fn get_appointment(&self, id: &AppointmentId) -> Result<Option<Appointment>> {
        let id = *id;
        self.with_conn(move |c| {
            Ok(Self::query_bodies(
                c,
                "appointment",
                "SELECT id, body FROM appointments WHERE id = ?1",
                [id.to_string()],
            )?
            .pop())
        })
        .await
    }

    async fn appointments_for_patient(&self, patient: &HealthId) -> Result<Vec<Appointment>> {
        let patient = patient.clone();
        self.with_conn(move |c| {
            Self::query_bodies(
                c,
                "appointment",
                "SELECT id, body FROM appointments WHERE patient_id = ?1 ORDER BY start, id",
                [patient.as_str()],
            )
        })
        .await
    }

    async fn appointments_for_provider(
        &self,
        provider: &ProviderId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Appointment>> {
        let provider = provider.clone();
        self.with_conn(move |c| {
            Self::query_bodies(
                c,
                "appointment",
                "SELECT id, body FROM appointments WHERE provider_id = ?1 AND start >= ?2 AND start < ?3 ORDER BY start, id",
                params![provider.as_str(), ts(from), ts(to)],
            )
        })
        .await
    }

    async fn replace_listings(&self, source: &str, listings: &[Opening]) -> Result<()> {
        for o in listings {
            validate("opening", format!("{}@{}", o.provider, ts(o.start)), o)?;
        }
        let (source, rows) = (
            source.to_owned(),
            listings
                .iter()
                .map(|o| Ok((o.provider.to_string(), ts(o.start), to_json(o)?)))
                .collect::<Result<Vec<_>>>()?,
        );
        self.with_conn(move |c| {
            let tx = c.transaction().map_err(db)?;
            tx.execute("DELETE FROM listings WHERE source = ?1", [&source]).map_err(db)?;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT OR REPLACE INTO listings (source, provider_id, start, body) VALUES (?1, ?2, ?3, ?4)",
                    )
                    .map_err(db)?;
                for (provider, start, body) in &rows {
                    stmt.execute(params![source, provider, start, body]).map_err(db)?;
                }
            }
            tx.commit().map_err(db)
        })
        .await
    }

    async fn listings(&self) -> Result<Vec<Opening>> {
        self.with_conn(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT provider_id || '@' || start, body FROM listings ORDER BY provider_id, start, source",
                )
                .map_err(db)?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))).map_err(db)?;
            rows.map(|r| {
                let (id, body) = r.map_err(db)?;
                from_json("opening", &id, &body)
            })
            .collect()
        })
        .await
    }

    async fn replace_openings(&self, openings: &[Opening]) -> Result<()> {
        for o in openings {
            validate("opening", format!("{}@{}", o.provider, ts(o.start)), o)?;
        }
        let rows = openings
            .iter()
            .map(|o| Ok((o.provider.to_string(), ts(o.start), to_json(o)?)))
            .collect::<Result<Vec<_>>>()?;
        self.with_conn(move |c| {
            let tx = c.transaction().map_err(db)?;
            tx.execute("DELETE FROM openings", []).map_err(db)?;
            {
                let mut stmt = tx
                    .prepare_cached("INSERT OR REPLACE INTO openings (provider_id, start, body) VALUES (?1, ?2, ?3)")
                    .map_err(db)?;
                for (provider, start, body) in &rows {
                    stmt.execute(params![provider, start, body]).map_err(db)?;
                }
            }
            tx.commit().map_err(db)
        })
        .await
    }

    async fn openings_for(
        &self,
        provider: &ProviderId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Opening>> {
        let (provider, from, to) = (provider.to_string(), ts(from), ts(to));
        self.with_conn(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT o.provider_id || '@' || o.start, o.body FROM openings o
                     WHERE o.provider_id = ?1 AND o.start >= ?2 AND o.start < ?3 AND NOT EXISTS (
                         SELECT 1 FROM appointments a
                         WHERE a.provider_id = o.provider_id AND a.start = o.start AND a.holds_slot = 1)
                     ORDER BY o.start",
                )
                .map_err(db)?;
            let rows = stmt
                .query_map(params![provider, from, to], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(db)?;
            rows.map(|r| {
                let (id, body) = r.map_err(db)?;
                from_json("opening", &id, &body)
            })
            .collect()
        })
        .await
    }

    async fn earliest_openings(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(ProviderId, DateTime<Utc>)>> {
        let (from, to) = (ts(from), ts(to));
        self.with_conn(move |c| {
            let mut stmt = c
                .prepare_cached(
                    // A skip scan over the providers in the primary key (provider_id, start),
                    // then per provider the first unheld opening in the window, in key order:
                    // a few index seeks per provider instead of visiting every opening.
                    "WITH RECURSIVE ids(p) AS (
                         SELECT MIN(provider_id) FROM openings
                         UNION ALL
                         SELECT (SELECT MIN(provider_id) FROM openings WHERE provider_id > ids.p)
                         FROM ids WHERE ids.p IS NOT NULL)
                     SELECT p, (SELECT o.start FROM openings o
                                WHERE o.provider_id = ids.p AND o.start >= ?1 AND o.start < ?2 AND NOT EXISTS (
                                    SELECT 1 FROM appointments a
                                    WHERE a.provider_id = o.provider_id AND a.start = o.start AND a.holds_slot = 1)
                                ORDER BY o.start LIMIT 1)
                     FROM ids WHERE p IS NOT NULL ORDER BY p",
                )
                .map_err(db)?;
            let rows = stmt
                .query_map(params![from, to], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?)))
                .map_err(db)?;
            rows.filter_map(|r| match r {
                Ok((_, None)) => None,
                Ok((p, Some(s))) => Some(Ok((p, s))),
                Err(e) => Some(Err(e)),
            })
            .map(|r| {
                let (provider, start) = r.map_err(db)?;
                let id: ProviderId = provider.parse().map_err(|source| StoreError::Invalid {
                    entity: "opening",
                    id: provider.clone(),
                    source,
                })?;
                let start = DateTime::parse_from_rfc3339(&start)
                    .map_err(|e| StoreError::Backend {
                        backend: BACKEND,
                        message: format!("opening start `{start}`: {e}"),
                    })?
                    .with_timezone(&Utc);
                Ok((id, start))
            })
            .collect()
        })
        .await
    }

    async fn enqueue_messages(&self, messages: &[OutboxMessage]) -> Result<usize> {
        for m in messages {
            validate("message", &m.id, m)?;
        }
        let messages = messages.to_vec();
        self.with_conn(move |c| {
            let tx = c.transaction().map_err(db)?;
            let mut new = 0;
            for m in &messages {
                new += write_message(&tx, m, "ON CONFLICT (id) DO NOTHING")?;
            }
            tx.commit().map_err(db)?;
            Ok(new)
        })
        .await
    }

    async fn claim_messages(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>> {
        self.with_conn(move |c| {
            // One connection, one transaction: the select and the lease are one step.
            let tx = c.transaction().map_err(db)?;
            let mut claimed: Vec<OutboxMessage> = Self::query_bodies(
                &tx,
                "message",
                "SELECT id, body FROM outbox WHERE state = 'pending' AND next_attempt <= ?1
                 AND (leased_until IS NULL OR leased_until <= ?1) ORDER BY next_attempt, id LIMIT ?2",
                params![ts(now), limit],
            )?;
            for m in &mut claimed {
                m.leased_until = Some(lease_until);
                write_message(
                    &tx,
                    m,
                    "ON CONFLICT (id) DO UPDATE SET state = excluded.state, \
                    next_attempt = excluded.next_attempt, leased_until = excluded.leased_until, body = excluded.body",
                )?;
            }
            tx.commit().map_err(db)?;
            Ok(claimed)
        })
        .await
    }

    async fn finish_message(&self, message: &OutboxMessage) -> Result<()> {
        validate("message", &message.id, message)?;
        let mut m = message.clone();
        m.leased_until = None;
        self.with_conn(move |c| {
            let tx = c.transaction().map_err(db)?;
            write_message(
                &tx,
                &m,
                "ON CONFLICT (id) DO UPDATE SET state = excluded.state, \
                next_attempt = excluded.next_attempt, leased_until = NULL, body = excluded.body \
                WHERE outbox.state = 'pending'",
            )?;
            tx.commit().map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn cancel_messages(&self, subject: &MessageSubject) -> Result<usize> {
        let id = subject_key(subject);
        self.with_conn(move |c| {
            let tx = c.transaction().map_err(db)?;
            let mut pending: Vec<OutboxMessage> = Self::query_bodies(
                &tx,
                "message",
                "SELECT id, body FROM outbox WHERE subject_id = ?1 AND state = 'pending'",
                [id],
            )?;
            for m in &mut pending {
                m.state = MessageState::Cancelled;
                m.leased_until = None;
                write_message(
                    &tx,
                    m,
                    "ON CONFLICT (id) DO UPDATE SET state = excluded.state, \
                    leased_until = NULL, body = excluded.body",
                )?;
            }
            tx.commit().map_err(db)?;
            Ok(pending.len())
        })
        .await
    }

    async fn messages_for(&self, subject: &MessageSubject) -> Result<Vec<OutboxMessage>> {
        let id = subject_key(subject);
        self.with_conn(move |c| {
            let mut out: Vec<OutboxMessage> =
                Self::query_bodies(c, "message", "SELECT id, body FROM outbox WHERE subject_id = ?1", [id])?;
            out.sort_by(|a, b| (a.due, &a.id).cmp(&(b.due, &b.id)));
            Ok(out)
        })
        .await
    }

    async fn outbox_counts(&self) -> Result<BTreeMap<String, u64>> {
        self.with_conn(move |c| {
            let mut stmt = c.prepare_cached("SELECT state, COUNT(*) FROM outbox GROUP BY state").map_err(db)?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?))).map_err(db)?;
            rows.map(|r| r.map_err(db)).collect()
        })
        .await
    }

    async fn put_prediction_set(&self, set: &PredictionSet) -> Result<()> {
        validate("prediction set", set.id, set)?;
        let set = set.clone();
        self.with_conn(move |c| {
            c.prepare_cached(
                "INSERT INTO prediction_sets (id, patient_id, version, created_at, body) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(db)?
            .execute(params![set.id.to_string(), set.patient.as_str(), set.version, ts(set.created_at), to_json(&set)?])
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict {
                        entity: "prediction set",
                        key: format!("{} v{}", set.patient, set.version),
                        reason: "this version (or id) already exists",
                    }
                } else {
                    db(e)
                }
            })?;
            Ok(())
        })
        .await
    }

    async fn latest_prediction_set(&self, patient: &HealthId) -> Result<Option<PredictionSet>> {
        let patient = patient.clone();
        self.with_conn(move |c| {
            Ok(Self::query_bodies(
                c,
                "prediction set",
                "SELECT id, body FROM prediction_sets WHERE patient_id = ?1 ORDER BY version DESC LIMIT 1",
                [patient.as_str()],
            )?
            .pop())
        })
        .await
    }

    async fn prediction_sets(&self, patient: &HealthId) -> Result<Vec<PredictionSet>> {
        let patient = patient.clone();
        self.with_conn(move |c| {
            Self::query_bodies(
                c,
                "prediction set",
                "SELECT id, body FROM prediction_sets WHERE patient_id = ?1 ORDER BY version",
                [patient.as_str()],
            )
        })
        .await
    }

    async fn put_consent(&self, grant: &ConsentGrant) -> Result<()> {
        validate("consent", grant.id, grant)?;
        let g = grant.clone();
        self.with_conn(move |c| {
            upsert_all(c, &owned_upsert("consents", "patient_id"), &[g], |g| {
                Ok([text(g.id.to_string()), text(g.patient.as_str()), text(to_json(g)?)])
            })
        })
        .await
    }

    async fn consents_for(&self, patient: &HealthId) -> Result<Vec<ConsentGrant>> {
        let patient = patient.clone();
        self.with_conn(move |c| {
            let mut v: Vec<ConsentGrant> = Self::query_bodies(
                c,
                "consent",
                "SELECT id, body FROM consents WHERE patient_id = ?1",
                [patient.as_str()],
            )?;
            v.sort_by_key(|a| (a.valid_from, a.id));
            Ok(v)
        })
        .await
    }

    async fn append_audit(&self, event: AuditEvent) -> Result<AuditEntry> {
        self.with_conn(move |c| {
            // IMMEDIATE: take the write lock before reading the head, so two writers
            // (even in two processes) cannot both extend the same head.
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(db)?;
            let head: Option<AuditEntry> = Self::query_bodies(
                &tx,
                "audit entry",
                "SELECT CAST(seq AS TEXT), body FROM audit ORDER BY seq DESC LIMIT 1",
                [],
            )?
            .pop();
            let entry = AuditEntry::seal(
                head.as_ref(),
                event.at,
                event.actor,
                event.action,
                event.patient,
                event.resource,
                event.outcome,
                event.reason,
            );
            tx.execute(
                "INSERT INTO audit (seq, at, patient_id, body) VALUES (?1, ?2, ?3, ?4)",
                params![entry.seq as i64, ts(entry.at), entry.patient.as_ref().map(HealthId::as_str), to_json(&entry)?],
            )
            .map_err(db)?;
            tx.commit().map_err(db)?;
            Ok(entry)
        })
        .await
    }

    async fn audit_log(&self, after_seq: u64, limit: u32) -> Result<Vec<AuditEntry>> {
        self.with_conn(move |c| {
            Self::query_bodies(
                c,
                "audit entry",
                "SELECT CAST(seq AS TEXT), body FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                params![after_seq as i64, limit.clamp(1, 100_000)],
            )
        })
        .await
    }

    async fn audit_rows(&self, after_position: u64, limit: u32) -> Result<Vec<(u64, AuditEntry)>> {
        self.with_conn(move |c| {
            let mut stmt =
                c.prepare_cached("SELECT seq, body FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2").map_err(db)?;
            let rows = stmt
                .query_map(params![after_position as i64, limit.clamp(1, 100_000)], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(db)?;
            rows.map(|r| {
                let (pos, body) = r.map_err(db)?;
                Ok((pos as u64, from_json("audit entry", &pos.to_string(), &body)?))
            })
            .collect()
        })
        .await
    }

    async fn audit_for_patient(&self, patient: &HealthId, limit: u32) -> Result<Vec<AuditEntry>> {
        let patient = patient.clone();
        self.with_conn(move |c| {
            Self::query_bodies(
                c,
                "audit entry",
                "SELECT CAST(seq AS TEXT), body FROM audit WHERE patient_id = ?1 ORDER BY seq DESC LIMIT ?2",
                params![patient.as_str(), limit.clamp(1, 100_000)],
            )
        })
        .await
    }

    async fn put_audit_checkpoint(&self, checkpoint: &AuditCheckpoint) -> Result<()> {
        let cp = checkpoint.clone();
        self.with_conn(move |c| {
            c.execute(
                "INSERT INTO audit_checkpoints (seq, body) VALUES (?1, ?2) ON CONFLICT (seq) DO NOTHING",
                params![cp.seq as i64, to_json(&cp)?],
            )
            .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn audit_checkpoints(&self) -> Result<Vec<AuditCheckpoint>> {
        self.with_conn(move |c| {
            Self::query_bodies(
                c,
                "audit checkpoint",
                "SELECT CAST(seq AS TEXT), body FROM audit_checkpoints ORDER BY seq",
                [],
            )
        })
        .await
    }

    async fn put_care_team(&self, team: &CareTeam) -> Result<()> {
        validate("care team", team.id, team)?;
        let t = team.clone();
        self.with_conn(move |c| {
            upsert_all(c, &owned_upsert("care_teams", "created_by"), &[t], |t| {
                Ok([text(t.id.to_string()), text(t.created_by.to_string()), text(to_json(t)?)])
            })
        })
        .await
    }

    async fn get_care_team(&self, id: &CareTeamId) -> Result<Option<CareTeam>> {
        let id = *id;
        self.with_conn(move |c| {
            Ok(Self::query_bodies(c, "care team", "SELECT id, body FROM care_teams WHERE id = ?1", [id.to_string()])?
                .pop())
        })
        .await
    }

    async fn list_care_teams(&self) -> Result<Vec<CareTeam>> {
        self.with_conn(move |c| {
            let mut v: Vec<CareTeam> = Self::query_bodies(c, "care team", "SELECT id, body FROM care_teams", [])?;
            v.sort_by_key(|t| (t.created_at, t.id));
            Ok(v)
        })
        .await
    }

    async fn put_prescription(&self, rx: &Prescription) -> Result<()> {
        validate("prescription", rx.id, rx)?;
        let r = rx.clone();
        self.with_conn(move |c| {
            upsert_all(c, &owned_upsert("prescriptions", "patient_id"), &[r], |r| {
                Ok([text(r.id.to_string()), text(r.patient.as_str()), text(to_json(r)?)])
            })
        })
        .await
    }

    async fn get_prescription(&self, id: &PrescriptionId) -> Result<Option<Prescription>> {
        let id = *id;
        self.with_conn(move |c| {
            Ok(Self::query_bodies(
                c,
                "prescription",
                "SELECT id, body FROM prescriptions WHERE id = ?1",
                [id.to_string()],
            )?
            .pop())
        })
        .await
    }

    async fn prescriptions_for(&self, patient: &HealthId) -> Result<Vec<Prescription>> {
        let patient = patient.clone();
        self.with_conn(move |c| {
            let mut v: Vec<Prescription> = Self::query_bodies(
                c,
                "prescription",
                "SELECT id, body FROM prescriptions WHERE patient_id = ?1",
                [patient.as_str()],
            )?;
            v.sort_by_key(|a| (a.created_at, a.id));
            Ok(v)
        })
        .await
    }

    async fn put_document(&self, doc: &DocumentRef) -> Result<()> {
        validate("document", doc.id, doc)?;
        let d = doc.clone();
        self.with_conn(move |c| {
            upsert_all(c, &owned_upsert("documents", "patient_id"), &[d], |d| {
                Ok([text(d.id.to_string()), text(d.patient.as_str()), text(to_json(d)?)])
            })
        })
        .await
    }

    async fn get_document(&self, id: &DocumentId) -> Result<Option<DocumentRef>> {
        let id = *id;
        self.with_conn(move |c| {
            Ok(Self::query_bodies(c, "document", "SELECT id, body FROM documents WHERE id = ?1", [id.to_string()])?
                .pop())
        })
        .await
    }

    async fn documents_for(&self, patient: &HealthId) -> Result<Vec<DocumentRef>> {
        let patient = patient.clone();
        self.with_conn(move |c| {
            let mut v: Vec<DocumentRef> = Self::query_bodies(
                c,
                "document",
                "SELECT id, body FROM documents WHERE patient_id = ?1",
                [patient.as_str()],
            )?;
            v.sort_by_key(|a| (a.uploaded_at, a.id));
            Ok(v)
        })
        .await
    }

    async fn put_user(&self, user: &User) -> Result<()> {
        validate("user", user.id, user)?;
        let u = user.clone();
        self.with_conn(move |c| {
            c.prepare_cached(
                "INSERT INTO users (id, username, body) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (id) DO UPDATE SET username = ?2, body = ?3",
            )
            .map_err(db)?
            .execute(params![u.id.to_string(), u.username, to_json(&u)?])
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict { entity: "user", key: u.username.clone(), reason: "the username is taken" }
                } else {
                    db(e)
                }
            })?;
            Ok(())
        })
        .await
    }

    async fn get_user(&self, id: &UserId) -> Result<Option<User>> {
        let id = *id;
        self.with_conn(move |c| {
            Ok(Self::query_bodies(c, "user", "SELECT id, body FROM users WHERE id = ?1", [id.to_string()])?.pop())
        })
        .await
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        let name = username.to_owned();
        self.with_conn(move |c| {
            Ok(Self::query_bodies(c, "user", "SELECT id, body FROM users WHERE username = ?1", [name])?.pop())
        })
        .await
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        self.with_conn(|c| Self::query_bodies(c, "user", "SELECT id, body FROM users ORDER BY username", [])).await
    }

    async fn put_feedback(&self, feedback: &Feedback) -> Result<()> {
        validate("feedback", feedback.id, feedback)?;
        let f = feedback.clone();
        self.with_conn(move |c| {
            upsert_all(
                c,
                "INSERT INTO feedback (id, patient_id, at, body) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (id) DO UPDATE SET patient_id = ?2, at = ?3, body = ?4",
                &[f],
                |f| Ok([text(f.id.to_string()), text(f.patient.as_str()), text(ts(f.at)), text(to_json(f)?)]),
            )
        })
        .await
    }

    async fn feedback_for(&self, patient: &HealthId) -> Result<Vec<Feedback>> {
        let patient = patient.clone();
        self.with_conn(move |c| {
            Self::query_bodies(
                c,
                "feedback",
                "SELECT id, body FROM feedback WHERE patient_id = ?1 ORDER BY at, id",
                [patient.as_str()],
            )
        })
        .await
    }

    async fn all_feedback(&self) -> Result<Vec<Feedback>> {
        self.with_conn(|c| Self::query_bodies(c, "feedback", "SELECT id, body FROM feedback ORDER BY at, id", [])).await
    }

    async fn get_meta(&self, key: &str) -> Result<Option<String>> {
        let key = key.to_owned();
        self.with_conn(move |c| {
            c.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional().map_err(db)
        })
        .await
    }

    async fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.with_conn(move |c| {
            c.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = ?2",
                [key, value],
            )
            .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn list_meta(&self) -> Result<Vec<(String, String)>> {
        self.with_conn(|c| {
            let mut st = c.prepare("SELECT key, value FROM meta ORDER BY key").map_err(db)?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(db)?;
            rows.collect::<std::result::Result<_, _>>().map_err(db)
        })
        .await
    }

    async fn counts(&self) -> Result<StoreCounts> {
        self.with_conn(|c| {
            Ok(StoreCounts {
                patients: count(c, "SELECT COUNT(*) FROM patients")?,
                providers: count(c, "SELECT COUNT(*) FROM providers")?,
                reviews: count(c, "SELECT COUNT(*) FROM reviews")?,
                schedule_rules: count(c, "SELECT COUNT(*) FROM schedule_rules")?,
                history_entries: count(c, "SELECT COUNT(*) FROM history")?,
                history_by_category: grouped(c, "SELECT category, COUNT(*) FROM history GROUP BY category")?,
                appointments: count(c, "SELECT COUNT(*) FROM appointments")?,
                appointments_by_status: grouped(c, "SELECT status, COUNT(*) FROM appointments GROUP BY status")?,
                ground_truth_by_condition: grouped(
                    c,
                    "SELECT condition, COUNT(*) FROM ground_truth GROUP BY condition",
                )?,
                prediction_sets: count(c, "SELECT COUNT(*) FROM prediction_sets")?,
                consents: count(c, "SELECT COUNT(*) FROM consents")?,
                audit_entries: count(c, "SELECT COUNT(*) FROM audit")?,
                documents: count(c, "SELECT COUNT(*) FROM documents")?,
                users: count(c, "SELECT COUNT(*) FROM users")?,
                feedback: count(c, "SELECT COUNT(*) FROM feedback")?,
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let mut n = 0;
        conformance::run_store_suite(|| {
            n += 1;
            let store = SqliteStore::open(dir.path().join(format!("s{n}.sqlite"))).unwrap();
            std::future::ready(Arc::new(store) as Arc<dyn Store>)
        })
        .await;
    }

    #[test]
    fn refuses_a_newer_schema_and_leaves_the_file_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        drop(SqliteStore::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
        drop(conn);
        let before = std::fs::read(&path).unwrap();
        let err = SqliteStore::open(&path).unwrap_err();
        assert!(matches!(err, StoreError::NewerSchema { found, .. } if found == SCHEMA_VERSION + 1), "{err}");
        assert!(err.to_string().contains("upgrade carelens"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn refuses_a_file_that_is_not_a_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let junk = b"this is not sqlite, just some text that happens to be here ".repeat(100);
        std::fs::write(&path, &junk).unwrap();
        let err = SqliteStore::open(&path).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("restore it from a backup"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), junk);
    }

    #[test]
    fn migrations_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        drop(SqliteStore::open(&path).unwrap());
        drop(SqliteStore::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
    }

    #[tokio::test]
    async fn outbox_rows_written_before_prescription_reminders_still_work() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        // A database at schema 8, holding an appointment message as #8 wrote it.
        let conn = Connection::open(&path).unwrap();
        for sql in &MIGRATIONS[..8] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 8).unwrap();
        let appt = AppointmentId::from_u128(7);
        let body = format!(
            r#"{{"id":"m1","appointment":"{appt}","kind":"reminder_24h","start":"2026-12-02T09:00:00Z","to":"a@b.de",
            "due":"2026-12-01T09:00:00Z","state":"pending","attempts":0,"next_attempt":"2026-12-01T09:00:00Z"}}"#
        );
        conn.execute(
            "INSERT INTO outbox (id, appointment_id, state, next_attempt, body) VALUES ('m1', ?1, 'pending', ?2, ?3)",
            params![appt.to_string(), "2026-12-01T09:00:00.000000Z", body],
        )
        .unwrap();
        drop(conn);
        let s = SqliteStore::open(&path).unwrap();
        let found = s.messages_for(&appt.into()).await.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].subject(), Some(MessageSubject::Appointment(appt)));
        assert_eq!(s.cancel_messages(&appt.into()).await.unwrap(), 1);
        let same_uuid = PrescriptionId::from_u128(7);
        assert!(s.messages_for(&same_uuid.into()).await.unwrap().is_empty());
    }
}
