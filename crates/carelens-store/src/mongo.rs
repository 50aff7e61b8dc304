//! MongoDB backend. Every collection holds plain documents, readable by other tools: the
//! domain type's own fields, `_id` set to the domain id, dates and timestamps as BSON dates,
//! plus a few derived fields the indexes need (`category` on history, `holds_slot` on
//! appointments). Batches run in one multi-document transaction with write concern majority.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use carelens_domain::{
    Appointment, AppointmentId, AppointmentStatus, AuditCheckpoint, AuditEntry, CareTeam, CareTeamId, ConsentGrant,
    DocumentId, DocumentRef, Feedback, GroundTruth, HealthId, HistoryEntry, MessageSubject, Opening, OutboxMessage,
    Patient, PracticeClosure, PredictionSet, Prescription, PrescriptionId, Provider, ProviderId, Review, ScheduleRule,
    User, UserId, Validate,
};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use mongodb::bson::{self, Bson, Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, IndexOptions, ReadConcern, WriteConcern};
use mongodb::{Client, ClientSession, Collection, Database, IndexModel};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::store::{AuditEvent, Booked, HistoryFilter, Page, PageRequest, Store, StoreCounts, WriteBatch};
use crate::{Result, StoreError};

const BACKEND: &str = "mongodb";
const DUPLICATE_KEY: i32 = 11000;

/// How each collection stores dates (`YYYY-MM-DD` → BSON date at 00:00 UTC) and timestamps.
struct Shape {
    name: &'static str,
    entity: &'static str,
    dates: &'static [&'static str],
    times: &'static [&'static str],
}

const PATIENTS: Shape = Shape { name: "patients", entity: "patient", dates: &["birth_date"], times: &[] };
const HISTORY: Shape = Shape { name: "history", entity: "history entry", dates: &["date", "start", "end"], times: &[] };
const GROUND_TRUTH: Shape = Shape { name: "ground_truth", entity: "ground truth", dates: &["onset"], times: &[] };
const PROVIDERS: Shape = Shape { name: "providers", entity: "provider", dates: &[], times: &[] };
const REVIEWS: Shape = Shape { name: "reviews", entity: "review", dates: &["date"], times: &[] };
const RULES: Shape =
    Shape { name: "schedule_rules", entity: "schedule rule", dates: &["valid_from", "valid_until"], times: &[] };
const CHECKPOINTS: Shape = Shape { name: "audit_checkpoints", entity: "audit checkpoint", dates: &[], times: &["at"] };
const CLOSURES: Shape = Shape { name: "closures", entity: "closure", dates: &["from", "to"], times: &[] };
const APPOINTMENTS: Shape = Shape {
    name: "appointments",
    entity: "appointment",
    dates: &[],
    times: &["start", "end", "booked_at", "status_changed_at"],
};
const PREDICTIONS: Shape =
    Shape { name: "prediction_sets", entity: "prediction set", dates: &[], times: &["created_at"] };
const CONSENTS: Shape =
    Shape { name: "consents", entity: "consent", dates: &[], times: &["valid_from", "valid_until", "revoked_at"] };
const AUDIT: Shape = Shape { name: "audit", entity: "audit entry", dates: &[], times: &["at"] };
const CARE_TEAMS: Shape = Shape { name: "care_teams", entity: "care team", dates: &[], times: &["created_at"] };
const PRESCRIPTIONS: Shape =
    Shape { name: "prescriptions", entity: "prescription", dates: &["start"], times: &["created_at"] };
const DOCUMENTS: Shape = Shape { name: "documents", entity: "document", dates: &[], times: &["uploaded_at"] };
const USERS: Shape = Shape { name: "users", entity: "user", dates: &[], times: &["created_at"] };
const FEEDBACK: Shape = Shape { name: "feedback", entity: "feedback", dates: &[], times: &["at"] };
/// Openings are written as generations (`gen`): a new set is inserted under a fresh id, then
/// the meta pointer flips to it, then generations older than the previous one are deleted, so a
/// reader always sees one whole set without a transaction over a million documents.
const LISTINGS: Shape = Shape { name: "listings", entity: "listing", dates: &[], times: &["start", "end"] };
const OPENINGS: Shape = Shape { name: "openings", entity: "opening", dates: &[], times: &["start", "end"] };
const OUTBOX: Shape = Shape {
    name: "outbox",
    entity: "message",
    dates: &[],
    times: &["start", "due", "next_attempt", "leased_until", "sent_at"],
};
const OPENINGS_GEN: &str = "openings.generation";
const LISTINGS_GEN: &str = "listings.generation.";
/// Documents per insert_many while writing a generation.
const GENERATION_CHUNK: usize = 10_000;

/// The MongoDB store.
#[derive(Clone)]
pub struct MongoStore {
    client: Client,
    db: Database,
    /// The URL without credentials, for messages.
    location: String,
}

impl std::fmt::Debug for MongoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoStore").field("location", &self.location).finish()
    }
}

/// `mongodb://user:pw@host/db` → `mongodb://host/db`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}{}", &url[..scheme + 3], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

fn backend(location: &str, what: &str, e: &mongodb::error::Error) -> StoreError {
    StoreError::Backend { backend: BACKEND, message: format!("{what} at {location}: {e}") }
}

fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == DUPLICATE_KEY,
        ErrorKind::InsertMany(m) => m.write_errors.iter().flatten().any(|w| w.code == DUPLICATE_KEY),
        ErrorKind::Command(c) => c.code == DUPLICATE_KEY,
        _ => false,
    }
}

fn is_transient(e: &mongodb::error::Error) -> bool {
    e.contains_label(mongodb::error::TRANSIENT_TRANSACTION_ERROR)
        || e.contains_label(mongodb::error::UNKNOWN_TRANSACTION_COMMIT_RESULT)
}

fn encode<T: Serialize>(shape: &Shape, id: Bson, v: &T) -> Result<Document> {
    let mut d = bson::to_document(v)
        .map_err(|e| StoreError::Backend { backend: BACKEND, message: format!("encoding {}: {e}", shape.entity) })?;
    for key in shape.dates {
        if let Some(Bson::String(s)) = d.get(*key)
            && let Ok(day) = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        {
            let ms = day.and_hms_opt(0, 0, 0).map_or(0, |t| t.and_utc().timestamp_millis());
            d.insert(*key, Bson::DateTime(bson::DateTime::from_millis(ms)));
        }
    }
    for key in shape.times {
        if let Some(Bson::String(s)) = d.get(*key)
            && let Ok(t) = DateTime::parse_from_rfc3339(s)
        {
            d.insert(*key, Bson::DateTime(bson::DateTime::from_millis(t.timestamp_millis())));
        }
    }
    d.insert("_id", id);
    Ok(d)
}

fn decode<T: DeserializeOwned>(shape: &Shape, mut d: Document) -> Result<T> {
    let id = d.remove("_id").map(|b| b.to_string()).unwrap_or_default();
    for key in ["category", "holds_slot"] {
        d.remove(key);
    }
    for key in shape.dates {
        if let Some(Bson::DateTime(t)) = d.get(*key) {
            let day = DateTime::<Utc>::from_timestamp_millis(t.timestamp_millis()).map(|t| t.date_naive());
            if let Some(day) = day {
                d.insert(*key, day.format("%Y-%m-%d").to_string());
            }
        }
    }
    for key in shape.times {
        if let Some(Bson::DateTime(t)) = d.get(*key)
            && let Some(t) = DateTime::<Utc>::from_timestamp_millis(t.timestamp_millis())
        {
            d.insert(*key, t.to_rfc3339_opts(SecondsFormat::AutoSi, true));
        }
    }
    bson::from_document(d).map_err(|e| StoreError::Backend {
        backend: BACKEND,
        message: format!("could not decode stored {} {id}: {e}", shape.entity),
    })
}

/// The outbox filter for the messages about `subject`.
fn subject_filter(subject: &MessageSubject) -> Document {
    match subject {
        MessageSubject::Appointment(a) => doc! { "appointment": a.to_string() },
        MessageSubject::Prescription(p) => doc! { "prescription": p.to_string() },
    }
}

fn bdate(d: NaiveDate) -> Bson {
    Bson::DateTime(bson::DateTime::from_millis(d.and_hms_opt(0, 0, 0).map_or(0, |t| t.and_utc().timestamp_millis())))
}

fn btime(t: DateTime<Utc>) -> Bson {
    Bson::DateTime(bson::DateTime::from_millis(t.timestamp_millis()))
}

fn truncate_to_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

fn validate<T: Validate + ?Sized>(entity: &'static str, id: impl ToString, v: &T) -> Result<()> {
    v.validate().map_err(|source| StoreError::Invalid { entity, id: id.to_string(), source })
}

impl MongoStore {
    /// Connects to `url` (`mongodb://[user:pw@]host[:port]/db[?replicaSet=…]`), checks the
    /// server answers, and creates the indexes. Credentials come from the URL; they never
    /// appear in errors or logs.
    pub async fn connect(url: &str) -> Result<Self> {
        let location = redact_url(url);
        let mut opts = ClientOptions::parse(url).await.map_err(|e| StoreError::Backend {
            backend: BACKEND,
            message: format!("invalid MongoDB URL {location}: {e}"),
        })?;
        opts.app_name = Some("carelens".into());
        opts.write_concern = Some(WriteConcern::majority());
        opts.read_concern = Some(ReadConcern::majority());
        let selection_timeout = opts.server_selection_timeout.unwrap_or(Duration::from_secs(10));
        opts.server_selection_timeout = Some(selection_timeout);
        let db_name = opts.default_database.clone().unwrap_or_else(|| "carelens".into());
        let client = Client::with_options(opts).map_err(|e| backend(&location, "cannot configure client", &e))?;
        let db = client.database(&db_name);
        db.run_command(doc! { "ping": 1 }).await.map_err(|e| match e.kind.as_ref() {
            ErrorKind::Authentication { .. } => {
                backend(&location, "MongoDB refused the credentials (check the user and password in the URL)", &e)
            }
            // The driver's message here is a dump of its topology; one line says more.
            ErrorKind::ServerSelection { .. } => StoreError::Backend {
                backend: BACKEND,
                message: format!(
                    "cannot reach MongoDB at {location}: no server answered within {} s (is mongod running, and are \
                     the host and port right? a replica set needs ?replicaSet=NAME, a single node ?directConnection=true)",
                    selection_timeout.as_secs()
                ),
            },
            _ => backend(&location, "cannot reach MongoDB (check the host, port and credentials)", &e),
        })?;
        let store = Self { client, db, location };
        store.create_indexes().await?;
        Ok(store)
    }

    pub fn location(&self) -> &str {
        &self.location
    }

    fn coll(&self, shape: &Shape) -> Collection<Document> {
        self.db.collection(shape.name)
    }

    fn err(&self, what: &str) -> impl FnOnce(mongodb::error::Error) -> StoreError + '_ {
        let what = what.to_owned();
        move |e| backend(&self.location, &what, &e)
    }

    async fn create_indexes(&self) -> Result<()> {
        let idx = |keys: Document, name: &str| {
            IndexModel::builder().keys(keys).options(IndexOptions::builder().name(name.to_owned()).build()).build()
        };
        let unique_partial = |keys: Document, name: &str, filter: Document| {
            IndexModel::builder()
                .keys(keys)
                .options(
                    IndexOptions::builder()
                        .name(name.to_owned())
                        .unique(true)
                        .partial_filter_expression(filter)
                        .build(),
                )
                .build()
        };
        let plan: Vec<(&Shape, Vec<IndexModel>)> = vec![
            (
                &HISTORY,
                vec![
                    idx(doc! { "patient": 1, "date": 1 }, "patient_date"),
                    IndexModel::builder()
                        .keys(doc! { "code": 1 })
                        .options(
                            IndexOptions::builder()
                                .name("diagnosis_code".to_owned())
                                .partial_filter_expression(
                                    doc! { "category": { "$in": ["diagnosis", "mental_health"] } },
                                )
                                .build(),
                        )
                        .build(),
                ],
            ),
            (&GROUND_TRUTH, vec![idx(doc! { "patient": 1 }, "patient")]),
            (&REVIEWS, vec![idx(doc! { "provider": 1 }, "provider")]),
            (&RULES, vec![idx(doc! { "provider": 1 }, "provider")]),
            (&CLOSURES, vec![idx(doc! { "provider": 1 }, "provider")]),
            (
                &APPOINTMENTS,
                vec![
                    unique_partial(doc! { "provider": 1, "start": 1 }, "one_per_slot", doc! { "holds_slot": true }),
                    idx(doc! { "provider": 1, "start": 1, "status": 1 }, "provider_start"),
                    idx(doc! { "patient": 1, "start": 1 }, "patient_start"),
                ],
            ),
            (
                &PREDICTIONS,
                vec![
                    IndexModel::builder()
                        .keys(doc! { "patient": 1, "version": 1 })
                        .options(IndexOptions::builder().name("patient_version".to_owned()).unique(true).build())
                        .build(),
                    idx(doc! { "created_at": 1 }, "created_at"),
                ],
            ),
            (&CONSENTS, vec![idx(doc! { "patient": 1 }, "patient")]),
            (&AUDIT, vec![idx(doc! { "patient": 1, "at": 1 }, "patient_at")]),
            (&DOCUMENTS, vec![idx(doc! { "patient": 1 }, "patient")]),
            (&PRESCRIPTIONS, vec![idx(doc! { "patient": 1 }, "patient")]),
            (
                &USERS,
                vec![
                    IndexModel::builder()
                        .keys(doc! { "username": 1 })
                        .options(IndexOptions::builder().name("username".to_owned()).unique(true).build())
                        .build(),
                ],
            ),
            (&FEEDBACK, vec![idx(doc! { "patient": 1, "at": 1 }, "patient_at"), idx(doc! { "at": 1 }, "at")]),
            (&LISTINGS, vec![idx(doc! { "source": 1, "gen": 1 }, "source_gen")]),
            (
                &OUTBOX,
                vec![
                    idx(doc! { "state": 1, "next_attempt": 1 }, "state_next_attempt"),
                    idx(doc! { "appointment": 1 }, "appointment"),
                    idx(doc! { "prescription": 1 }, "prescription"),
                ],
            ),
            (
                &OPENINGS,
                vec![
                    idx(doc! { "gen": 1, "provider": 1, "start": 1 }, "gen_provider_start"),
                    idx(doc! { "gen": 1, "start": 1 }, "gen_start"),
                ],
            ),
        ];
        for (shape, models) in plan {
            self.coll(shape).create_indexes(models).await.map_err(self.err(&format!("cannot index {}", shape.name)))?;
        }
        Ok(())
    }

    async fn find_all<T: DeserializeOwned>(&self, shape: &Shape, filter: Document, sort: Document) -> Result<Vec<T>> {
        self.find_limited(shape, filter, sort, None).await
    }

    async fn find_limited<T: DeserializeOwned>(
        &self,
        shape: &Shape,
        filter: Document,
        sort: Document,
        limit: Option<i64>,
    ) -> Result<Vec<T>> {
        let mut cursor = self
            .coll(shape)
            .find(filter)
            .sort(sort)
            .limit(limit.unwrap_or(0))
            .await
            .map_err(self.err(&format!("reading {}", shape.name)))?;
        let mut out = Vec::new();
        while cursor.advance().await.map_err(self.err(&format!("reading {}", shape.name)))? {
            let d = cursor.deserialize_current().map_err(self.err(&format!("reading {}", shape.name)))?;
            out.push(decode(shape, d)?);
        }
        Ok(out)
    }

    /// Replaces (or inserts) the document with `_id` = `id`.
    async fn upsert(&self, shape: &Shape, id: String, d: Document) -> Result<()> {
        self.coll(shape)
            .replace_one(doc! { "_id": id }, d)
            .upsert(true)
            .await
            .map_err(self.err(&format!("writing {}", shape.entity)))?;
        Ok(())
    }

    async fn find_one<T: DeserializeOwned>(&self, shape: &Shape, filter: Document) -> Result<Option<T>> {
        let d = self.coll(shape).find_one(filter).await.map_err(self.err(&format!("reading {}", shape.name)))?;
        d.map(|d| decode(shape, d)).transpose()
    }

    async fn page<T: DeserializeOwned>(&self, shape: &Shape, page: PageRequest) -> Result<Page<T>> {
        let limit = page.limit.clamp(1, 10_000);
        let filter = match &page.after {
            Some(a) => doc! { "_id": { "$gt": a } },
            None => doc! {},
        };
        let mut cursor = self
            .coll(shape)
            .find(filter)
            .sort(doc! { "_id": 1 })
            .limit(i64::from(limit) + 1)
            .await
            .map_err(self.err(&format!("reading {}", shape.name)))?;
        let mut items = Vec::new();
        let mut last = None;
        let mut more = false;
        while cursor.advance().await.map_err(self.err(&format!("reading {}", shape.name)))? {
            if items.len() == limit as usize {
                more = true;
                break;
            }
            let d = cursor.deserialize_current().map_err(self.err(&format!("reading {}", shape.name)))?;
            last = d.get_str("_id").ok().map(str::to_owned);
            items.push(decode(shape, d)?);
        }
        Ok(Page { items, next: if more { last.map(|a| PageRequest { after: Some(a), limit }) } else { None } })
    }

    /// Replaces `docs` (by `_id`) inside the session's transaction.
    async fn replace_many(&self, s: &mut ClientSession, shape: &Shape, docs: Vec<Document>) -> Result<(), WriteErr> {
        if docs.is_empty() {
            return Ok(());
        }
        let ids: Vec<Bson> = docs.iter().filter_map(|d| d.get("_id").cloned()).collect();
        let coll = self.coll(shape);
        coll.delete_many(doc! { "_id": { "$in": ids } }).session(&mut *s).await.map_err(WriteErr::Mongo)?;
        coll.insert_many(docs).session(&mut *s).await.map_err(|e| {
            if is_duplicate_key(&e) && shape.name == APPOINTMENTS.name {
                WriteErr::SlotTaken
            } else {
                WriteErr::Mongo(e)
            }
        })?;
        Ok(())
    }

    async fn apply_once(&self, docs: &[(&Shape, Vec<Document>)]) -> Result<(), WriteErr> {
        let mut s = self.client.start_session().await.map_err(WriteErr::Mongo)?;
        s.start_transaction().await.map_err(WriteErr::Mongo)?;
        for (shape, d) in docs {
            if let Err(e) = self.replace_many(&mut s, shape, d.clone()).await {
                let _ = s.abort_transaction().await;
                return Err(e);
            }
        }
        // An unknown commit result (e.g. the server went away mid-commit) may be retried, but
        // not forever: a dead server must surface as an error, not a hang. Retrying the whole
        // batch later is safe either way (every write is an upsert by id).
        let mut attempts = 0u64;
        loop {
            attempts += 1;
            match s.commit_transaction().await {
                Ok(()) => return Ok(()),
                Err(e) if e.contains_label(mongodb::error::UNKNOWN_TRANSACTION_COMMIT_RESULT) && attempts < 8 => {
                    tokio::time::sleep(Duration::from_millis(100 * attempts)).await;
                }
                Err(e) => return Err(WriteErr::Mongo(e)),
            }
        }
    }
}

/// Why a transactional write failed.
enum WriteErr {
    SlotTaken,
    Mongo(mongodb::error::Error),
}

fn history_doc(e: &HistoryEntry) -> Result<Document> {
    let mut d = encode(&HISTORY, Bson::String(e.id.to_string()), e)?;
    d.insert("category", e.category().as_str());
    Ok(d)
}

fn appointment_doc(a: &Appointment) -> Result<Document> {
    let mut d = encode(&APPOINTMENTS, Bson::String(a.id.to_string()), a)?;
    d.insert("holds_slot", a.status.holds_slot());
    Ok(d)
}

fn slot_conflict(a: &Appointment) -> StoreError {
    StoreError::Conflict {
        entity: "appointment",
        key: format!("{}@{}", a.provider, a.start.to_rfc3339_opts(SecondsFormat::Micros, true)),
        reason: "the slot is already booked",
    }
}

impl MongoStore {
    /// Writes `b` in one transaction, retrying transient failures.
    async fn apply_atomic(&self, b: WriteBatch) -> Result<()> {
        let mut docs: Vec<(&Shape, Vec<Document>)> = Vec::new();
        docs.push((
            &PATIENTS,
            b.patients.iter().map(|p| encode(&PATIENTS, p.id.as_str().into(), p)).collect::<Result<_>>()?,
        ));
        docs.push((&HISTORY, b.history.iter().map(history_doc).collect::<Result<_>>()?));
        docs.push((
            &GROUND_TRUTH,
            b.ground_truth
                .iter()
                .map(|g| encode(&GROUND_TRUTH, format!("{}/{}", g.patient, g.condition.as_str()).into(), g))
                .collect::<Result<_>>()?,
        ));
        docs.push((
            &PROVIDERS,
            b.providers.iter().map(|p| encode(&PROVIDERS, p.id.as_str().into(), p)).collect::<Result<_>>()?,
        ));
        docs.push((
            &REVIEWS,
            b.reviews.iter().map(|r| encode(&REVIEWS, r.id.to_string().into(), r)).collect::<Result<_>>()?,
        ));
        docs.push((
            &RULES,
            b.schedule_rules.iter().map(|r| encode(&RULES, r.id.to_string().into(), r)).collect::<Result<_>>()?,
        ));
        docs.push((
            &CLOSURES,
            b.closures.iter().map(|r| encode(&CLOSURES, r.id.to_string().into(), r)).collect::<Result<_>>()?,
        ));
        docs.push((&APPOINTMENTS, b.appointments.iter().map(appointment_doc).collect::<Result<_>>()?));
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.apply_once(&docs).await {
                Ok(()) => return Ok(()),
                Err(WriteErr::SlotTaken) => {
                    // Name the first appointment whose slot is held elsewhere (or within the batch).
                    let a = &b.appointments[0];
                    return Err(slot_conflict(a));
                }
                Err(WriteErr::Mongo(e)) if is_transient(&e) && attempts < 5 => {
                    tokio::time::sleep(Duration::from_millis(50 * attempts)).await;
                }
                Err(WriteErr::Mongo(e)) => {
                    return Err(backend(
                        &self.location,
                        "batch write failed (no patient is half-written: each transaction holds whole patients; retrying the batch is safe)",
                        &e,
                    ));
                }
            }
        }
    }
}

impl MongoStore {
    /// Writes `items` as a new generation of `shape` (extra fields from `extra`), points `key`
    /// at it, and drops generations other than the new and the previous one.
    async fn write_generation(&self, shape: &Shape, key: &str, items: &[Opening], extra: Document) -> Result<()> {
        for o in items {
            validate("opening", format!("{}@{}", o.provider, o.start.to_rfc3339()), o)?;
        }
        let previous = self.get_meta(key).await?;
        let generation = uuid::Uuid::new_v4().simple().to_string();
        for chunk in items.chunks(GENERATION_CHUNK) {
            let mut docs = Vec::with_capacity(chunk.len());
            for o in chunk {
                let id = format!("{generation}|{}|{}", o.provider, o.start.timestamp_millis());
                let mut d = encode(shape, Bson::String(id), o)?;
                d.insert("gen", generation.as_str());
                d.extend(extra.clone());
                docs.push(d);
            }
            self.coll(shape).insert_many(docs).await.map_err(self.err(&format!("writing {}", shape.name)))?;
        }
        self.set_meta(key, &generation).await?;
        let mut keep = vec![generation];
        keep.extend(previous);
        let mut stale = doc! { "gen": { "$nin": keep } };
        stale.extend(extra);
        self.coll(shape).delete_many(stale).await.map_err(self.err(&format!("pruning {}", shape.name)))?;
        Ok(())
    }

    /// Drops openings an appointment holds (same provider and start).
    async fn unheld(&self, openings: Vec<Opening>, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Vec<Opening>> {
        let Some(provider) = openings.first().map(|o| o.provider.clone()) else { return Ok(openings) };
        let held: Vec<Appointment> = self
            .find_all(
                &APPOINTMENTS,
                doc! { "provider": provider.as_str(), "start": { "$gte": btime(from), "$lt": btime(to) }, "holds_slot": true },
                doc! { "start": 1 },
            )
            .await?;
        let held: std::collections::HashSet<i64> = held.iter().map(|a| a.start.timestamp_millis()).collect();
        Ok(openings.into_iter().filter(|o| !held.contains(&o.start.timestamp_millis())).collect())
    }
}

#[async_trait]
impl Store for MongoStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn apply(&self, b: WriteBatch) -> Result<()> {
        crate::sqlite::validate_batch(&b)?;
        if b.len() <= WriteBatch::ATOMIC_RECORDS {
            return self.apply_atomic(b).await;
        }
        // Too large for one transaction on a modest WiredTiger cache (error 388,
        // TransactionTooLargeForCache): commit whole patients per transaction.
        for part in b.split_by_patient(WriteBatch::ATOMIC_RECORDS) {
            self.apply_atomic(part).await?;
        }
        Ok(())
    }

    async fn get_patient(&self, id: &HealthId) -> Result<Option<Patient>> {
        self.find_one(&PATIENTS, doc! { "_id": id.as_str() }).await
    }

    async fn list_patients(&self, page: PageRequest) -> Result<Page<Patient>> {
        self.page(&PATIENTS, page).await
    }

    async fn history(&self, patient: &HealthId, filter: &HistoryFilter) -> Result<Vec<HistoryEntry>> {
        let mut q = doc! { "patient": patient.as_str() };
        let mut range = Document::new();
        if let Some(f) = filter.from {
            range.insert("$gte", bdate(f));
        }
        if let Some(t) = filter.to {
            range.insert("$lte", bdate(t));
        }
        if !range.is_empty() {
            q.insert("date", range);
        }
        if !filter.categories.is_empty() {
            let cats: Vec<&str> = filter.categories.iter().map(|c| c.as_str()).collect();
            q.insert("category", doc! { "$in": cats });
        }
        let all: Vec<HistoryEntry> = self.find_all(&HISTORY, q, doc! { "date": 1, "_id": 1 }).await?;
        Ok(all.into_iter().filter(|e| filter.matches(e)).collect())
    }

    async fn ground_truth(&self, patient: &HealthId) -> Result<Vec<GroundTruth>> {
        self.find_all(&GROUND_TRUTH, doc! { "patient": patient.as_str() }, doc! { "condition": 1 }).await
    }

    async fn get_provider(&self, id: &ProviderId) -> Result<Option<Provider>> {
        self.find_one(&PROVIDERS, doc! { "_id": id.as_str() }).await
    }

    async fn list_providers(&self, page: PageRequest) -> Result<Page<Provider>> {
        self.page(&PROVIDERS, page).await
    }

    async fn reviews_for(&self, provider: &ProviderId) -> Result<Vec<Review>> {
        self.find_all(&REVIEWS, doc! { "provider": provider.as_str() }, doc! { "date": 1, "_id": 1 }).await
    }

    async fn schedule_rules_for(&self, provider: &ProviderId) -> Result<Vec<ScheduleRule>> {
        let mut v: Vec<ScheduleRule> =
            self.find_all(&RULES, doc! { "provider": provider.as_str() }, doc! { "_id": 1 }).await?;
        v.sort_by_key(|r| (r.weekday.num_days_from_monday(), r.start, r.id));
        Ok(v)
    }

    async fn closures_for(&self, provider: &ProviderId) -> Result<Vec<PracticeClosure>> {
        let mut v: Vec<PracticeClosure> =
            self.find_all(&CLOSURES, doc! { "provider": provider.as_str() }, doc! { "_id": 1 }).await?;
        v.sort_by_key(|r| (r.from, r.id));
        Ok(v)
    }

    async fn book(&self, a: &Appointment) -> Result<Booked> {
        validate("appointment", a.id, a)?;
        let d = appointment_doc(a)?;
        match self.coll(&APPOINTMENTS).insert_one(d).await {
            Ok(_) => {
                let mut stored = a.clone();
                stored.start = truncate_to_millis(a.start);
                stored.end = truncate_to_millis(a.end);
                stored.booked_at = truncate_to_millis(a.booked_at);
                stored.status_changed_at = truncate_to_millis(a.status_changed_at);
                Ok(Booked { appointment: stored, created: true })
            }
            // Either the id exists (a retried request, or a reused key) or the slot is held.
            Err(e) if is_duplicate_key(&e) => {
                match self.find_one::<Appointment>(&APPOINTMENTS, doc! { "_id": a.id.to_string() }).await? {
                    Some(stored) if Booked::same_request(&stored, a) => {
                        Ok(Booked { appointment: stored, created: false })
                    }
                    Some(_) => Err(Booked::reused(a)),
                    None => Err(slot_conflict(a)),
                }
            }
            Err(e) => Err(backend(&self.location, "booking failed", &e)),
        }
    }

    async fn reschedule(&self, id: &AppointmentId, start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Appointment> {
        for _ in 0..20 {
            let mut a: Appointment = self
                .find_one(&APPOINTMENTS, doc! { "_id": id.to_string() })
                .await?
                .ok_or_else(|| StoreError::NotFound { entity: "appointment", id: id.to_string() })?;
            Booked::check_movable(&a)?;
            let (previous_status, previous_start) = (a.status, a.start);
            a.start = truncate_to_millis(start);
            a.end = truncate_to_millis(end);
            validate("appointment", a.id, &a)?;
            // One document changes: the unique slot index refuses the move if the slot is
            // held, and then nothing changed. Optimistic on status and start.
            let filter =
                doc! { "_id": id.to_string(), "status": previous_status.as_str(), "start": btime(previous_start) };
            match self.coll(&APPOINTMENTS).replace_one(filter, appointment_doc(&a)?).await {
                Ok(r) if r.matched_count == 1 => return Ok(a),
                Ok(_) => continue,
                Err(e) if is_duplicate_key(&e) => return Err(slot_conflict(&a)),
                Err(e) => return Err(backend(&self.location, "rescheduling appointment", &e)),
            }
        }
        Err(StoreError::Backend { backend: BACKEND, message: format!("appointment {id} kept changing; retry") })
    }

    async fn set_appointment_status(
        &self,
        id: &AppointmentId,
        status: AppointmentStatus,
        at: DateTime<Utc>,
    ) -> Result<Appointment> {
        for _ in 0..20 {
            let mut a: Appointment = self
                .find_one(&APPOINTMENTS, doc! { "_id": id.to_string() })
                .await?
                .ok_or_else(|| StoreError::NotFound { entity: "appointment", id: id.to_string() })?;
            let previous = a.status;
            a.transition(status, truncate_to_millis(at)).map_err(|source| StoreError::Invalid {
                entity: "appointment",
                id: id.to_string(),
                source,
            })?;
            // Optimistic: only if nobody changed the status meanwhile.
            let filter = doc! { "_id": id.to_string(), "status": previous.as_str() };
            match self.coll(&APPOINTMENTS).replace_one(filter, appointment_doc(&a)?).await {
                Ok(r) if r.matched_count == 1 => return Ok(a),
                Ok(_) => continue,
                Err(e) if is_duplicate_key(&e) => return Err(slot_conflict(&a)),
                Err(e) => return Err(backend(&self.location, "updating appointment", &e)),
            }
        }
        Err(StoreError::Backend { backend: BACKEND, message: format!("appointment {id} kept changing; retry") })
    }

    async fn get_appointment(&self, id: &AppointmentId) -> Result<Option<Appointment>> {
        self.find_one(&APPOINTMENTS, doc! { "_id": id.to_string() }).await
    }

    async fn appointments_for_patient(&self, patient: &HealthId) -> Result<Vec<Appointment>> {
        self.find_all(&APPOINTMENTS, doc! { "patient": patient.as_str() }, doc! { "start": 1, "_id": 1 }).await
    }

    async fn appointments_for_provider(
        &self,
        provider: &ProviderId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Appointment>> {
        let q = doc! { "provider": provider.as_str(), "start": { "$gte": btime(from), "$lt": btime(to) } };
        self.find_all(&APPOINTMENTS, q, doc! { "start": 1, "_id": 1 }).await
    }

    async fn replace_listings(&self, source: &str, listings: &[Opening]) -> Result<()> {
        self.write_generation(&LISTINGS, &format!("{LISTINGS_GEN}{source}"), listings, doc! { "source": source }).await
    }

    async fn listings(&self) -> Result<Vec<Opening>> {
        let current: Vec<Document> = self
            .list_meta()
            .await?
            .into_iter()
            .filter_map(|(k, generation)| {
                k.strip_prefix(LISTINGS_GEN).map(|source| doc! { "source": source, "gen": generation })
            })
            .collect();
        if current.is_empty() {
            return Ok(vec![]);
        }
        let mut v: Vec<Opening> =
            self.find_all(&LISTINGS, doc! { "$or": current }, doc! { "provider": 1, "start": 1, "source": 1 }).await?;
        v.sort_by(|a, b| (&a.provider, a.start).cmp(&(&b.provider, b.start)));
        Ok(v)
    }

    async fn replace_openings(&self, openings: &[Opening]) -> Result<()> {
        self.write_generation(&OPENINGS, OPENINGS_GEN, openings, doc! {}).await
    }

    async fn openings_for(
        &self,
        provider: &ProviderId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Opening>> {
        let Some(generation) = self.get_meta(OPENINGS_GEN).await? else { return Ok(vec![]) };
        let q = doc! { "gen": generation, "provider": provider.as_str(), "start": { "$gte": btime(from), "$lt": btime(to) } };
        let openings = self.find_all(&OPENINGS, q, doc! { "start": 1 }).await?;
        self.unheld(openings, from, to).await
    }

    async fn earliest_openings(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(ProviderId, DateTime<Utc>)>> {
        let Some(generation) = self.get_meta(OPENINGS_GEN).await? else { return Ok(vec![]) };
        // Per provider the first opening in the window, held or not (one grouped scan, no
        // per-opening join); then the few whose first opening is held look further.
        let pipeline = vec![
            doc! { "$match": { "gen": generation, "start": { "$gte": btime(from), "$lt": btime(to) } } },
            doc! { "$group": { "_id": "$provider", "earliest": { "$min": "$start" } } },
            doc! { "$sort": { "_id": 1 } },
        ];
        let mut cursor =
            self.coll(&OPENINGS).aggregate(pipeline).await.map_err(self.err("finding the earliest openings"))?;
        let mut first = Vec::new();
        while cursor.advance().await.map_err(self.err("finding the earliest openings"))? {
            let d = cursor.deserialize_current().map_err(self.err("finding the earliest openings"))?;
            let provider = d.get_str("_id").unwrap_or_default();
            let id: ProviderId = provider.parse().map_err(|source| StoreError::Invalid {
                entity: "opening",
                id: provider.to_owned(),
                source,
            })?;
            let start = d
                .get_datetime("earliest")
                .map_err(|e| StoreError::Backend { backend: BACKEND, message: format!("earliest opening: {e}") })?;
            first.push((id, start.timestamp_millis()));
        }
        let mut held = std::collections::HashSet::new();
        let mut cursor = self
            .coll(&APPOINTMENTS)
            .find(doc! { "holds_slot": true, "start": { "$gte": btime(from), "$lt": btime(to) } })
            .projection(doc! { "_id": 0, "provider": 1, "start": 1 })
            .await
            .map_err(self.err("finding the held slots"))?;
        while cursor.advance().await.map_err(self.err("finding the held slots"))? {
            let d = cursor.deserialize_current().map_err(self.err("finding the held slots"))?;
            if let (Ok(p), Ok(t)) = (d.get_str("provider"), d.get_datetime("start")) {
                held.insert((p.to_owned(), t.timestamp_millis()));
            }
        }
        let mut out = Vec::with_capacity(first.len());
        for (id, ms) in first {
            if held.contains(&(id.as_str().to_owned(), ms)) {
                if let Some(o) = self.openings_for(&id, from, to).await?.into_iter().next() {
                    out.push((id, o.start));
                }
            } else {
                out.push((id, DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default()));
            }
        }
        Ok(out)
    }

    async fn enqueue_messages(&self, messages: &[OutboxMessage]) -> Result<usize> {
        let mut new = 0;
        for m in messages {
            validate("message", &m.id, m)?;
            let d = encode(&OUTBOX, m.id.clone().into(), m)?;
            // Insert-if-absent: a message already there (sent or not) is left as it is.
            let r = self
                .coll(&OUTBOX)
                .update_one(doc! { "_id": &m.id }, doc! { "$setOnInsert": d })
                .upsert(true)
                .await
                .map_err(self.err("enqueueing a message"))?;
            new += usize::from(r.upserted_id.is_some());
        }
        Ok(new)
    }

    async fn claim_messages(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>> {
        let mut out = Vec::new();
        for _ in 0..limit {
            // find_one_and_update is atomic per document: two workers never get the same one.
            let d = self
                .coll(&OUTBOX)
                .find_one_and_update(
                    doc! {
                        "state": "pending",
                        "next_attempt": { "$lte": btime(now) },
                        "$or": [ { "leased_until": null }, { "leased_until": { "$lte": btime(now) } } ],
                    },
                    doc! { "$set": { "leased_until": btime(lease_until) } },
                )
                .sort(doc! { "next_attempt": 1, "_id": 1 })
                .return_document(mongodb::options::ReturnDocument::After)
                .await
                .map_err(self.err("claiming messages"))?;
            match d {
                Some(d) => out.push(decode(&OUTBOX, d)?),
                None => break,
            }
        }
        Ok(out)
    }

    async fn finish_message(&self, message: &OutboxMessage) -> Result<()> {
        validate("message", &message.id, message)?;
        let mut m = message.clone();
        m.leased_until = None;
        let d = encode(&OUTBOX, m.id.clone().into(), &m)?;
        self.coll(&OUTBOX)
            .replace_one(doc! { "_id": &m.id, "state": "pending" }, d)
            .await
            .map_err(self.err("recording a message's outcome"))?;
        Ok(())
    }

    async fn cancel_messages(&self, subject: &MessageSubject) -> Result<usize> {
        let mut filter = subject_filter(subject);
        filter.insert("state", "pending");
        let r = self
            .coll(&OUTBOX)
            .update_many(filter, doc! { "$set": { "state": "cancelled" }, "$unset": { "leased_until": "" } })
            .await
            .map_err(self.err("cancelling messages"))?;
        Ok(usize::try_from(r.modified_count).unwrap_or(usize::MAX))
    }

    async fn messages_for(&self, subject: &MessageSubject) -> Result<Vec<OutboxMessage>> {
        self.find_all(&OUTBOX, subject_filter(subject), doc! { "due": 1, "_id": 1 }).await
    }

    async fn outbox_counts(&self) -> Result<BTreeMap<String, u64>> {
        let mut cursor = self
            .coll(&OUTBOX)
            .aggregate(vec![doc! { "$group": { "_id": "$state", "n": { "$sum": 1 } } }])
            .await
            .map_err(self.err("counting messages"))?;
        let mut out = BTreeMap::new();
        while cursor.advance().await.map_err(self.err("counting messages"))? {
            let d = cursor.deserialize_current().map_err(self.err("counting messages"))?;
            let n = d.get_i32("n").map(i64::from).or_else(|_| d.get_i64("n")).unwrap_or(0);
            out.insert(d.get_str("_id").unwrap_or_default().to_owned(), u64::try_from(n).unwrap_or(0));
        }
        Ok(out)
    }

    async fn put_prediction_set(&self, set: &PredictionSet) -> Result<()> {
        validate("prediction set", set.id, set)?;
        let d = encode(&PREDICTIONS, set.id.to_string().into(), set)?;
        match self.coll(&PREDICTIONS).insert_one(d).await {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate_key(&e) => Err(StoreError::Conflict {
                entity: "prediction set",
                key: format!("{} v{}", set.patient, set.version),
                reason: "this version (or id) already exists",
            }),
            Err(e) => Err(backend(&self.location, "writing prediction set", &e)),
        }
    }

    async fn latest_prediction_set(&self, patient: &HealthId) -> Result<Option<PredictionSet>> {
        let d = self
            .coll(&PREDICTIONS)
            .find_one(doc! { "patient": patient.as_str() })
            .sort(doc! { "version": -1 })
            .await
            .map_err(self.err("reading prediction sets"))?;
        d.map(|d| decode(&PREDICTIONS, d)).transpose()
    }

    async fn prediction_sets(&self, patient: &HealthId) -> Result<Vec<PredictionSet>> {
        self.find_all(&PREDICTIONS, doc! { "patient": patient.as_str() }, doc! { "version": 1 }).await
    }

    async fn put_consent(&self, grant: &ConsentGrant) -> Result<()> {
        validate("consent", grant.id, grant)?;
        let d = encode(&CONSENTS, grant.id.to_string().into(), grant)?;
        self.upsert(&CONSENTS, grant.id.to_string(), d).await
    }

    async fn consents_for(&self, patient: &HealthId) -> Result<Vec<ConsentGrant>> {
        self.find_all(&CONSENTS, doc! { "patient": patient.as_str() }, doc! { "valid_from": 1, "_id": 1 }).await
    }

    async fn append_audit(&self, event: AuditEvent) -> Result<AuditEntry> {
        // The chain head is serialised by the unique `_id` = seq: a writer that loses the race
        // gets a duplicate key and seals again on the new head.
        let at = truncate_to_millis(event.at);
        for _ in 0..200 {
            let head: Option<AuditEntry> = {
                let d = self
                    .coll(&AUDIT)
                    .find_one(doc! {})
                    .sort(doc! { "_id": -1 })
                    .await
                    .map_err(self.err("reading audit head"))?;
                d.map(|d| decode(&AUDIT, d)).transpose()?
            };
            let entry = AuditEntry::seal(
                head.as_ref(),
                at,
                event.actor.clone(),
                event.action,
                event.patient.clone(),
                event.resource.clone(),
                event.outcome,
                event.reason.clone(),
            );
            let d = encode(&AUDIT, Bson::Int64(entry.seq as i64), &entry)?;
            match self.coll(&AUDIT).insert_one(d).await {
                Ok(_) => return Ok(entry),
                Err(e) if is_duplicate_key(&e) => tokio::time::sleep(Duration::from_millis(2)).await,
                Err(e) => return Err(backend(&self.location, "appending audit entry", &e)),
            }
        }
        Err(StoreError::Backend { backend: BACKEND, message: "audit chain too contended; retry".into() })
    }

    async fn audit_log(&self, after_seq: u64, limit: u32) -> Result<Vec<AuditEntry>> {
        let filter = doc! { "_id": { "$gt": after_seq as i64 } };
        self.find_limited(&AUDIT, filter, doc! { "_id": 1 }, Some(i64::from(limit.clamp(1, 100_000)))).await
    }

    async fn audit_rows(&self, after_position: u64, limit: u32) -> Result<Vec<(u64, AuditEntry)>> {
        let mut cursor = self
            .coll(&AUDIT)
            .find(doc! { "_id": { "$gt": after_position as i64 } })
            .sort(doc! { "_id": 1 })
            .limit(i64::from(limit.clamp(1, 100_000)))
            .await
            .map_err(self.err("reading audit"))?;
        let mut out = Vec::new();
        while cursor.advance().await.map_err(self.err("reading audit"))? {
            let d = cursor.deserialize_current().map_err(self.err("reading audit"))?;
            let pos = d.get_i64("_id").map_err(|e| StoreError::Backend {
                backend: BACKEND,
                message: format!("audit row without a numeric _id: {e}"),
            })?;
            out.push((pos as u64, decode(&AUDIT, d)?));
        }
        Ok(out)
    }

    async fn audit_for_patient(&self, patient: &HealthId, limit: u32) -> Result<Vec<AuditEntry>> {
        let filter = doc! { "patient": patient.as_str() };
        self.find_limited(&AUDIT, filter, doc! { "_id": -1 }, Some(i64::from(limit.clamp(1, 100_000)))).await
    }

    async fn put_audit_checkpoint(&self, checkpoint: &AuditCheckpoint) -> Result<()> {
        let d = encode(&CHECKPOINTS, Bson::Int64(checkpoint.seq as i64), checkpoint)?;
        match self.coll(&CHECKPOINTS).insert_one(d).await {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate_key(&e) => Ok(()),
            Err(e) => Err(backend(&self.location, "keeping an audit checkpoint", &e)),
        }
    }

    async fn audit_checkpoints(&self) -> Result<Vec<AuditCheckpoint>> {
        self.find_all(&CHECKPOINTS, doc! {}, doc! { "_id": 1 }).await
    }

    async fn put_care_team(&self, team: &CareTeam) -> Result<()> {
        validate("care team", team.id, team)?;
        let d = encode(&CARE_TEAMS, team.id.to_string().into(), team)?;
        self.upsert(&CARE_TEAMS, team.id.to_string(), d).await
    }

    async fn get_care_team(&self, id: &CareTeamId) -> Result<Option<CareTeam>> {
        self.find_one(&CARE_TEAMS, doc! { "_id": id.to_string() }).await
    }

    async fn list_care_teams(&self) -> Result<Vec<CareTeam>> {
        self.find_all(&CARE_TEAMS, doc! {}, doc! { "created_at": 1, "_id": 1 }).await
    }

    async fn put_prescription(&self, rx: &Prescription) -> Result<()> {
        validate("prescription", rx.id, rx)?;
        let d = encode(&PRESCRIPTIONS, rx.id.to_string().into(), rx)?;
        self.upsert(&PRESCRIPTIONS, rx.id.to_string(), d).await
    }

    async fn get_prescription(&self, id: &PrescriptionId) -> Result<Option<Prescription>> {
        self.find_one(&PRESCRIPTIONS, doc! { "_id": id.to_string() }).await
    }

    async fn prescriptions_for(&self, patient: &HealthId) -> Result<Vec<Prescription>> {
        self.find_all(&PRESCRIPTIONS, doc! { "patient": patient.as_str() }, doc! { "created_at": 1, "_id": 1 }).await
    }

    async fn put_document(&self, doc_ref: &DocumentRef) -> Result<()> {
        validate("document", doc_ref.id, doc_ref)?;
        let d = encode(&DOCUMENTS, doc_ref.id.to_string().into(), doc_ref)?;
        self.upsert(&DOCUMENTS, doc_ref.id.to_string(), d).await
    }

    async fn get_document(&self, id: &DocumentId) -> Result<Option<DocumentRef>> {
        self.find_one(&DOCUMENTS, doc! { "_id": id.to_string() }).await
    }

    async fn documents_for(&self, patient: &HealthId) -> Result<Vec<DocumentRef>> {
        self.find_all(&DOCUMENTS, doc! { "patient": patient.as_str() }, doc! { "uploaded_at": 1, "_id": 1 }).await
    }

    async fn put_user(&self, user: &User) -> Result<()> {
        validate("user", user.id, user)?;
        let d = encode(&USERS, user.id.to_string().into(), user)?;
        match self.coll(&USERS).replace_one(doc! { "_id": user.id.to_string() }, d).upsert(true).await {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate_key(&e) => Err(StoreError::Conflict {
                entity: "user",
                key: user.username.clone(),
                reason: "the username is taken",
            }),
            Err(e) => Err(backend(&self.location, "writing user", &e)),
        }
    }

    async fn get_user(&self, id: &UserId) -> Result<Option<User>> {
        self.find_one(&USERS, doc! { "_id": id.to_string() }).await
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        self.find_one(&USERS, doc! { "username": username }).await
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        self.find_all(&USERS, doc! {}, doc! { "username": 1 }).await
    }

    async fn put_feedback(&self, feedback: &Feedback) -> Result<()> {
        validate("feedback", feedback.id, feedback)?;
        let d = encode(&FEEDBACK, feedback.id.to_string().into(), feedback)?;
        self.upsert(&FEEDBACK, feedback.id.to_string(), d).await
    }

    async fn feedback_for(&self, patient: &HealthId) -> Result<Vec<Feedback>> {
        self.find_all(&FEEDBACK, doc! { "patient": patient.as_str() }, doc! { "at": 1, "_id": 1 }).await
    }

    async fn all_feedback(&self) -> Result<Vec<Feedback>> {
        self.find_all(&FEEDBACK, doc! {}, doc! { "at": 1, "_id": 1 }).await
    }

    async fn get_meta(&self, key: &str) -> Result<Option<String>> {
        let d = self
            .db
            .collection::<Document>("meta")
            .find_one(doc! { "_id": key })
            .await
            .map_err(self.err("reading meta"))?;
        Ok(d.and_then(|d| d.get_str("value").ok().map(str::to_owned)))
    }

    async fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.db
            .collection::<Document>("meta")
            .replace_one(doc! { "_id": key }, doc! { "_id": key, "value": value })
            .upsert(true)
            .await
            .map_err(self.err("writing meta"))?;
        Ok(())
    }

    async fn list_meta(&self) -> Result<Vec<(String, String)>> {
        let mut cursor = self
            .db
            .collection::<Document>("meta")
            .find(doc! {})
            .sort(doc! { "_id": 1 })
            .await
            .map_err(self.err("reading meta"))?;
        let mut out = Vec::new();
        while cursor.advance().await.map_err(self.err("reading meta"))? {
            let d = cursor.deserialize_current().map_err(self.err("reading meta"))?;
            out.push((
                d.get_str("_id").unwrap_or_default().to_owned(),
                d.get_str("value").unwrap_or_default().to_owned(),
            ));
        }
        Ok(out)
    }

    async fn counts(&self) -> Result<StoreCounts> {
        let count = |shape: &'static Shape| async move {
            self.coll(shape).count_documents(doc! {}).await.map_err(self.err(&format!("counting {}", shape.name)))
        };
        let grouped = |shape: &'static Shape, field: &'static str| async move {
            let mut cursor = self
                .coll(shape)
                .aggregate(vec![doc! { "$group": { "_id": format!("${field}"), "n": { "$sum": 1 } } }])
                .await
                .map_err(self.err(&format!("counting {}", shape.name)))?;
            let mut out = std::collections::BTreeMap::new();
            while cursor.advance().await.map_err(self.err(&format!("counting {}", shape.name)))? {
                let d = cursor.deserialize_current().map_err(self.err(&format!("counting {}", shape.name)))?;
                let key = d.get_str("_id").unwrap_or_default().to_owned();
                let n = d.get_i32("n").map(i64::from).or_else(|_| d.get_i64("n")).unwrap_or(0);
                out.insert(key, n as u64);
            }
            Ok::<_, StoreError>(out)
        };
        Ok(StoreCounts {
            patients: count(&PATIENTS).await?,
            providers: count(&PROVIDERS).await?,
            reviews: count(&REVIEWS).await?,
            schedule_rules: count(&RULES).await?,
            history_entries: count(&HISTORY).await?,
            history_by_category: grouped(&HISTORY, "category").await?,
            appointments: count(&APPOINTMENTS).await?,
            appointments_by_status: grouped(&APPOINTMENTS, "status").await?,
            ground_truth_by_condition: grouped(&GROUND_TRUTH, "condition").await?,
            prediction_sets: count(&PREDICTIONS).await?,
            consents: count(&CONSENTS).await?,
            audit_entries: count(&AUDIT).await?,
            documents: count(&DOCUMENTS).await?,
            users: count(&USERS).await?,
            feedback: count(&FEEDBACK).await?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::conformance;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mongodb_passes_the_conformance_suite() {
        let Some(server) = carelens_testkit::MongoServer::start().await else { return };
        eprintln!("MongoDB server version {}", server.version);
        let mut n = 0;
        conformance::run_store_suite(|| {
            n += 1;
            let url = server.url(&format!("conformance{n}"));
            async move { Arc::new(MongoStore::connect(&url).await.unwrap()) as Arc<dyn Store> }
        })
        .await;
    }

    /// Retries `f` for up to 60 s while the server comes back.
    async fn eventually<T, F, Fut>(mut f: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            match f().await {
                Ok(v) => return v,
                Err(e) if std::time::Instant::now() < deadline => {
                    eprintln!("retrying: {e}");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => panic!("server did not come back: {e}"),
            }
        }
    }

    fn population(patients: u64) -> crate::WriteBatch {
        let cfg =
            carelens_synth::Config { seed: 3, patients, as_of: carelens_synth::Config::default_as_of(), threads: 2 };
        let mut b = crate::WriteBatch::default();
        carelens_synth::generate(&cfg, |c| {
            b.patients.extend(c.patients);
            b.history.extend(c.history);
            b.ground_truth.extend(c.ground_truth);
            b.appointments.extend(c.appointments);
            b.reviews.extend(c.reviews);
            b.providers = c.providers;
            b.schedule_rules.extend(c.schedule_rules);
            Ok::<_, ()>(())
        })
        .unwrap();
        b
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn survives_restarts_and_a_kill_mid_batch() {
        let Some(mut server) = carelens_testkit::MongoServer::start().await else { return };
        // A short server-selection timeout keeps the dead-server phase quick.
        let store =
            MongoStore::connect(&format!("{}&serverSelectionTimeoutMS=1000", server.url("faults"))).await.unwrap();

        // Reconnect after the server restarts.
        store.set_meta("k", "before restart").await.unwrap();
        server.restart().await;
        let v = eventually(|| store.get_meta("k")).await;
        assert_eq!(v.as_deref(), Some("before restart"));

        // Kill the server while a large batch is being written: afterwards the batch is either
        // all there or not there at all, and retrying it lands it exactly once.
        let batch = population(2500);
        let (patients, entries) = (batch.patients.len() as u64, batch.history.len() as u64);
        let writer = {
            let (store, batch) = (store.clone(), batch.clone());
            tokio::spawn(async move { store.apply(batch).await })
        };
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let t0 = std::time::Instant::now();
        server.kill();
        let outcome = writer.await.unwrap();
        eprintln!("writer returned {:?} after the kill", t0.elapsed());
        eprintln!("batch outcome when killed: {:?}", outcome.as_ref().map_err(ToString::to_string));
        server.restart().await;
        // Every patient present is complete: all of its history is there.
        let mut expected: std::collections::HashMap<&HealthId, usize> = std::collections::HashMap::new();
        for e in &batch.history {
            *expected.entry(&e.patient).or_default() += 1;
        }
        let stored = eventually(|| store.list_patients(PageRequest::first(10_000))).await.items;
        let all = HistoryFilter::default();
        for p in &stored {
            let h = eventually(|| store.history(&p.id, &all)).await;
            assert_eq!(h.len(), expected.get(&p.id).copied().unwrap_or(0), "patient {} is half-written", p.id);
        }
        eprintln!(
            "after the kill: {} of {patients} patients committed, each complete ({:?})",
            stored.len(),
            t0.elapsed()
        );
        eventually(|| store.apply(batch.clone())).await;
        let c = eventually(|| store.counts()).await;
        assert_eq!((c.patients, c.history_entries), (patients, entries));
    }

    #[tokio::test]
    async fn unreachable_servers_and_bad_urls_are_named() {
        let port = carelens_testkit::free_port();
        let url = format!("mongodb://alice:topsecret@127.0.0.1:{port}/care?serverSelectionTimeoutMS=500");
        let err = MongoStore::connect(&url).await.unwrap_err().to_string();
        assert!(err.contains("cannot reach MongoDB"), "{err}");
        assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
        assert!(!err.contains("topsecret"), "credentials leaked: {err}");
        let err = MongoStore::connect("mongodb://").await.unwrap_err().to_string();
        assert!(err.contains("invalid MongoDB URL"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bad_credentials_are_refused_without_echoing_them() {
        let Some(server) = carelens_testkit::MongoServer::start_with_auth("carelens", "right-password").await else {
            return;
        };
        let good = MongoStore::connect(&server.url("authed")).await.unwrap();
        good.set_meta("k", "v").await.unwrap();
        let bad = server.url("authed").replace("right-password", "wrong-password");
        let err = MongoStore::connect(&bad).await.unwrap_err().to_string();
        eprintln!("bad credentials: {err}");
        assert!(err.contains("MongoDB refused the credentials (check the user and password in the URL)"), "{err}");
        assert!(!err.contains("wrong-password") && !err.contains("right-password"), "credentials leaked: {err}");
    }

    #[test]
    fn credentials_never_reach_messages() {
        assert_eq!(redact_url("mongodb://alice:s3cret@db.example:27017/care"), "mongodb://db.example:27017/care");
        assert_eq!(redact_url("mongodb://127.0.0.1/care"), "mongodb://127.0.0.1/care");
    }
}
