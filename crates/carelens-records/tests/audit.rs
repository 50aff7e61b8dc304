//! The audit log against tampering, on the embedded store (SQLite, edited with rusqlite) and on
//! MongoDB (edited with the driver): each kind of tampering — modify, delete, insert, reorder,
//! truncate, reseal — is found and located, and an untouched log verifies.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use carelens_domain::{Actor, ActorRole, AuditAction, AuditEntry, AuditOutcome, HealthId};
use carelens_records::audit::{self, AuditKey, Finding};
use carelens_store::{AuditEvent, MongoStore, SqliteStore, Store};
use chrono::{Duration, TimeZone, Utc};

const ENTRIES: u64 = 20;

fn key() -> AuditKey {
    AuditKey::from_hex(&"42".repeat(32)).unwrap()
}

async fn fill(store: &dyn Store) -> Vec<AuditEntry> {
    let t0 = Utc.with_ymd_and_hms(2026, 1, 5, 8, 0, 0).unwrap();
    let mut out = Vec::new();
    for i in 0..ENTRIES {
        out.push(
            store
                .append_audit(AuditEvent {
                    at: t0 + Duration::seconds(i as i64),
                    actor: Actor { role: ActorRole::Doctor, id: format!("dr-{}", i % 3) },
                    action: AuditAction::Read,
                    patient: Some(HealthId::from_number(i % 5 + 1)),
                    resource: format!("history/{i}"),
                    outcome: AuditOutcome::Allowed,
                    reason: None,
                })
                .await
                .unwrap(),
        );
    }
    out
}

/// One backend's way of editing its audit rows behind the store's back.
#[async_trait::async_trait]
trait Tamper: Send + Sync {
    fn store(&self) -> Arc<dyn Store>;
    /// Sets entry `seq`'s resource without resealing.
    async fn modify(&self, seq: u64);
    async fn delete(&self, seq: u64);
    async fn delete_after(&self, seq: u64);
    /// Swaps the contents of rows `a` and `b`.
    async fn swap(&self, a: u64, b: u64);
    /// Moves rows after `seq` one up and puts `entry` at `seq + 1`.
    async fn insert_after(&self, seq: u64, entry: &AuditEntry);
    /// Replaces row `seq` with `entry`.
    async fn replace(&self, seq: u64, entry: &AuditEntry);
}

struct Sqlite {
    store: Arc<dyn Store>,
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Sqlite {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("carelens.sqlite");
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
        Self { store, path, _dir: dir }
    }
    fn sql(&self, f: impl FnOnce(&rusqlite::Connection)) {
        let c = rusqlite::Connection::open(&self.path).unwrap();
        f(&c);
    }
}

#[async_trait::async_trait]
impl Tamper for Sqlite {
    fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }
    async fn modify(&self, seq: u64) {
        self.sql(|c| {
            c.execute("UPDATE audit SET body = json_set(body, '$.resource', 'history/other') WHERE seq = ?1", [seq])
                .unwrap();
        });
    }
    async fn delete(&self, seq: u64) {
        self.sql(|c| {
            c.execute("DELETE FROM audit WHERE seq = ?1", [seq]).unwrap();
        });
    }
    async fn delete_after(&self, seq: u64) {
        self.sql(|c| {
            c.execute("DELETE FROM audit WHERE seq > ?1", [seq]).unwrap();
        });
    }
    async fn swap(&self, a: u64, b: u64) {
        self.sql(|c| {
            c.execute_batch(&format!(
                "UPDATE audit SET seq = -1 WHERE seq = {a}; UPDATE audit SET seq = {a} WHERE seq = {b};
                 UPDATE audit SET seq = {b} WHERE seq = -1;"
            ))
            .unwrap();
        });
    }
    async fn insert_after(&self, seq: u64, entry: &AuditEntry) {
        let body = serde_json::to_string(entry).unwrap();
        self.sql(|c| {
            c.execute_batch(&format!(
                "UPDATE audit SET seq = seq + 100000 WHERE seq > {seq}; UPDATE audit SET seq = seq - 99999 WHERE seq > 100000;"
            ))
            .unwrap();
            c.execute("INSERT INTO audit (seq, at, patient_id, body) VALUES (?1, '', NULL, ?2)", rusqlite::params![
                seq + 1,
                body
            ])
            .unwrap();
        });
    }
    async fn replace(&self, seq: u64, entry: &AuditEntry) {
        let body = serde_json::to_string(entry).unwrap();
        self.sql(|c| {
            c.execute("UPDATE audit SET body = ?2 WHERE seq = ?1", rusqlite::params![seq, body]).unwrap();
        });
    }
}

struct Mongo {
    store: Arc<dyn Store>,
    coll: mongodb::Collection<mongodb::bson::Document>,
    _server: Arc<carelens_testkit::MongoServer>,
}

impl Mongo {
    async fn new(server: Arc<carelens_testkit::MongoServer>, db: &str) -> Self {
        let url = server.url(db);
        let store: Arc<dyn Store> = Arc::new(MongoStore::connect(&url).await.unwrap());
        let client = mongodb::Client::with_uri_str(&url).await.unwrap();
        Self { store, coll: client.database(db).collection("audit"), _server: server }
    }
    async fn doc(&self, seq: u64) -> mongodb::bson::Document {
        self.coll.find_one(mongodb::bson::doc! { "_id": seq as i64 }).await.unwrap().unwrap()
    }
    /// The document the store would write for `entry` at row `seq`: the stored shape of a
    /// neighbour with the entry's fields.
    async fn doc_of(&self, seq: u64, entry: &AuditEntry) -> mongodb::bson::Document {
        let mut d = mongodb::bson::to_document(entry).unwrap();
        let at = mongodb::bson::DateTime::from_millis(entry.at.timestamp_millis());
        d.insert("at", at);
        d.insert("_id", seq as i64);
        d
    }
}

#[async_trait::async_trait]
impl Tamper for Mongo {
    fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }
    async fn modify(&self, seq: u64) {
        self.coll
            .update_one(
                mongodb::bson::doc! { "_id": seq as i64 },
                mongodb::bson::doc! { "$set": { "resource": "history/other" } },
            )
            .await
            .unwrap();
    }
    async fn delete(&self, seq: u64) {
        self.coll.delete_one(mongodb::bson::doc! { "_id": seq as i64 }).await.unwrap();
    }
    async fn delete_after(&self, seq: u64) {
        self.coll.delete_many(mongodb::bson::doc! { "_id": { "$gt": seq as i64 } }).await.unwrap();
    }
    async fn swap(&self, a: u64, b: u64) {
        let (mut da, mut db) = (self.doc(a).await, self.doc(b).await);
        da.insert("_id", b as i64);
        db.insert("_id", a as i64);
        self.coll.replace_one(mongodb::bson::doc! { "_id": a as i64 }, db).await.unwrap();
        self.coll.replace_one(mongodb::bson::doc! { "_id": b as i64 }, da).await.unwrap();
    }
    async fn insert_after(&self, seq: u64, entry: &AuditEntry) {
        let last = self.store.audit_log(0, 1000).await.unwrap().len() as u64;
        for s in (seq + 1..=last).rev() {
            let mut d = self.doc(s).await;
            self.coll.delete_one(mongodb::bson::doc! { "_id": s as i64 }).await.unwrap();
            d.insert("_id", (s + 1) as i64);
            self.coll.insert_one(d).await.unwrap();
        }
        let d = self.doc_of(seq + 1, entry).await;
        self.coll.insert_one(d).await.unwrap();
    }
    async fn replace(&self, seq: u64, entry: &AuditEntry) {
        let d = self.doc_of(seq, entry).await;
        self.coll.replace_one(mongodb::bson::doc! { "_id": seq as i64 }, d).await.unwrap();
    }
}

async fn verify(t: &dyn Tamper) -> Vec<Finding> {
    let v = audit::verify(t.store().as_ref(), &[key().public_hex()], None).await.unwrap();
    v.findings
}

/// Runs every tampering on a fresh log from `fresh` and checks what the verifier says.
async fn tampering_is_found_and_located<F, Fut>(fresh: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Box<dyn Tamper>>,
{
    let now = Utc.with_ymd_and_hms(2026, 1, 6, 0, 0, 0).unwrap();
    // Untouched: intact, and the checkpoint vouches for the head.
    let t = fresh().await;
    let log = fill(t.store().as_ref()).await;
    let cp = audit::checkpoint(t.store().as_ref(), &key(), now).await.unwrap();
    assert_eq!((cp.seq, &cp.hash), (ENTRIES, &log[ENTRIES as usize - 1].hash));
    let v = audit::verify(t.store().as_ref(), &[key().public_hex()], None).await.unwrap();
    assert!(v.intact(), "{:?}", v.findings);
    assert_eq!((v.entries, v.checkpoints, v.signed_up_to), (ENTRIES, 1, Some(ENTRIES)));
    // A checkpoint by a key nobody trusts is reported; the chain itself is fine.
    let other = AuditKey::from_hex(&"07".repeat(32)).unwrap();
    let v = audit::verify(t.store().as_ref(), &[other.public_hex()], None).await.unwrap();
    assert!(matches!(&v.findings[..], [Finding::BadCheckpoint { seq: ENTRIES, .. }]), "{:?}", v.findings);

    // Modified.
    let t = fresh().await;
    fill(t.store().as_ref()).await;
    t.modify(7).await;
    assert_eq!(verify(t.as_ref()).await, [Finding::Modified { seq: 7 }]);

    // Deleted.
    let t = fresh().await;
    fill(t.store().as_ref()).await;
    t.delete(9).await;
    assert_eq!(verify(t.as_ref()).await, [Finding::Missing { from: 9, to: 9 }]);

    // Reordered: rows 5 and 6 swapped.
    let t = fresh().await;
    fill(t.store().as_ref()).await;
    t.swap(5, 6).await;
    assert_eq!(verify(t.as_ref()).await, [Finding::Reordered { seq: 5, after: 6 }]);

    // Inserted: a well-sealed entry slipped in after 10, later rows moved up one.
    let t = fresh().await;
    let log = fill(t.store().as_ref()).await;
    let forged = AuditEntry::seal(
        Some(&log[9]),
        log[9].at,
        Actor { role: ActorRole::Admin, id: "intruder".into() },
        AuditAction::Read,
        None,
        "history/forged".into(),
        AuditOutcome::Allowed,
        None,
    );
    t.insert_after(10, &forged).await;
    assert_eq!(verify(t.as_ref()).await, [Finding::Duplicate { seq: 11 }]);

    // Truncated: the last five entries cut off after the checkpoint.
    let t = fresh().await;
    fill(t.store().as_ref()).await;
    let cp = audit::checkpoint(t.store().as_ref(), &key(), now).await.unwrap();
    t.delete_after(15).await;
    assert_eq!(verify(t.as_ref()).await, [Finding::Truncated { last: 15, signed: 20 }]);
    // Cut off together with the stored checkpoints: only an anchor kept elsewhere catches it.
    let t = fresh().await;
    fill(t.store().as_ref()).await;
    t.delete_after(15).await;
    assert!(verify(t.as_ref()).await.is_empty(), "without a checkpoint a clean cut looks like a shorter log");
    let v = audit::verify(t.store().as_ref(), &[key().public_hex()], Some(&cp)).await.unwrap();
    assert_eq!(v.findings, [Finding::Truncated { last: 15, signed: 20 }]);

    // Resealed: entry 4 edited and every hash after it recomputed — the chain verifies, the
    // signed checkpoint at 20 does not.
    let t = fresh().await;
    let log = fill(t.store().as_ref()).await;
    audit::checkpoint(t.store().as_ref(), &key(), now).await.unwrap();
    let mut prev = log[2].clone();
    for e in &log[3..] {
        let mut x = e.clone();
        if x.seq == 4 {
            x.outcome = AuditOutcome::Denied;
        }
        x.prev_hash = prev.hash.clone();
        x.hash = x.compute_hash();
        t.replace(x.seq, &x).await;
        prev = x;
    }
    assert_eq!(verify(t.as_ref()).await, [Finding::CheckpointMismatch { seq: 20 }]);
}

#[tokio::test]
async fn embedded_audit_tampering_is_found_and_located() {
    tampering_is_found_and_located(|| async { Box::new(Sqlite::new()) as Box<dyn Tamper> }).await;
}

#[tokio::test]
async fn mongodb_audit_tampering_is_found_and_located() {
    let Some(server) = carelens_testkit::MongoServer::start().await else { return };
    let server = Arc::new(server);
    let n = std::sync::atomic::AtomicU32::new(0);
    tampering_is_found_and_located(|| {
        let server = server.clone();
        let db = format!("audit{}", n.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
        async move { Box::new(Mongo::new(server, &db).await) as Box<dyn Tamper> }
    })
    .await;
}
