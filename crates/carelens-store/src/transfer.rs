//! Moving a whole data set between backends, and a checksum that proves two data sets equal.
//! Uses the traits only, so any pair of backends works (SQLite ⇄ MongoDB, files ⇄ S3).

use carelens_domain::{AuditEntry, GENESIS_HASH, verify_chain};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{AuditEvent, HistoryFilter, ObjectStore, PageRequest, Result, Store, StoreError, WriteBatch};

const PAGE: u32 = 500;

/// What a transfer copied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TransferReport {
    pub meta: u64,
    pub providers: u64,
    pub patients: u64,
    pub history_entries: u64,
    pub appointments: u64,
    pub prediction_sets: u64,
    pub consents: u64,
    pub documents: u64,
    pub prescriptions: u64,
    pub care_teams: u64,
    pub users: u64,
    pub feedback: u64,
    pub audit_entries: u64,
    pub objects: u64,
    pub object_bytes: u64,
    pub source_digest: String,
    pub target_digest: String,
}

fn line<T: Serialize>(h: &mut Sha256, v: &T) {
    if let Ok(bytes) = serde_json::to_vec(v) {
        h.update(&bytes);
        h.update(b"\n");
    }
}

/// SHA-256 over everything a store and object store hold, walked in a canonical order:
/// meta; users; providers with reviews and schedule rules; patients with history, ground
/// truth, appointments, prediction sets, consents, documents and feedback; the audit chain and its checkpoints;
/// object keys (which are content addresses). Equal digests mean equal content.
pub async fn digest(store: &dyn Store, objects: &dyn ObjectStore) -> Result<String> {
    let mut h = Sha256::new();
    line(&mut h, &store.list_meta().await?);
    line(&mut h, &store.list_users().await?);
    line(&mut h, &store.list_care_teams().await?);
    let mut page = Some(PageRequest::first(PAGE));
    while let Some(req) = page {
        let got = store.list_providers(req).await?;
        for p in &got.items {
            line(&mut h, p);
            line(&mut h, &store.reviews_for(&p.id).await?);
            line(&mut h, &store.schedule_rules_for(&p.id).await?);
            line(&mut h, &store.closures_for(&p.id).await?);
        }
        page = got.next;
    }
    // Corrected entries too: a copy keeps the record's whole history.
    let all = HistoryFilter { include_superseded: true, ..HistoryFilter::default() };
    let mut page = Some(PageRequest::first(PAGE));
    while let Some(req) = page {
        let got = store.list_patients(req).await?;
        for p in &got.items {
            line(&mut h, p);
            line(&mut h, &store.history(&p.id, &all).await?);
            line(&mut h, &store.ground_truth(&p.id).await?);
            line(&mut h, &store.appointments_for_patient(&p.id).await?);
            line(&mut h, &store.prediction_sets(&p.id).await?);
            line(&mut h, &store.consents_for(&p.id).await?);
            line(&mut h, &store.documents_for(&p.id).await?);
            line(&mut h, &store.prescriptions_for(&p.id).await?);
            line(&mut h, &store.feedback_for(&p.id).await?);
        }
        page = got.next;
    }
    let mut after = 0;
    loop {
        let chunk = store.audit_log(after, 10_000).await?;
        let Some(last) = chunk.last() else { break };
        after = last.seq;
        for e in &chunk {
            line(&mut h, e);
        }
    }
    line(&mut h, &store.audit_checkpoints().await?);
    line(&mut h, &objects.list("").await?);
    Ok(hex::encode(h.finalize()))
}

/// Copies everything from (`from`, `from_objects`) into (`to`, `to_objects`), then checks both
/// digests are equal. Idempotent: rerunning after an interruption finishes the job. `progress`
/// is called with the number of patients copied so far.
pub async fn copy_all(
    from: &dyn Store,
    from_objects: &dyn ObjectStore,
    to: &dyn Store,
    to_objects: &dyn ObjectStore,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<TransferReport> {
    let mut r = TransferReport::default();
    for (k, v) in from.list_meta().await? {
        to.set_meta(&k, &v).await?;
        r.meta += 1;
    }
    for t in from.list_care_teams().await? {
        to.put_care_team(&t).await?;
        r.care_teams += 1;
    }
    for u in from.list_users().await? {
        to.put_user(&u).await?;
        r.users += 1;
    }
    let mut page = Some(PageRequest::first(PAGE));
    while let Some(req) = page {
        let got = from.list_providers(req).await?;
        let mut b = WriteBatch::default();
        for p in &got.items {
            b.reviews.extend(from.reviews_for(&p.id).await?);
            b.schedule_rules.extend(from.schedule_rules_for(&p.id).await?);
            b.closures.extend(from.closures_for(&p.id).await?);
        }
        r.providers += got.items.len() as u64;
        b.providers = got.items;
        to.apply(b).await?;
        page = got.next;
    }
    // Corrected entries too: a copy keeps the record's whole history.
    let all = HistoryFilter { include_superseded: true, ..HistoryFilter::default() };
    let mut page = Some(PageRequest::first(PAGE));
    while let Some(req) = page {
        let got = from.list_patients(req).await?;
        let mut b = WriteBatch::default();
        let mut sets = Vec::new();
        let mut consents = Vec::new();
        let mut documents = Vec::new();
        let mut prescriptions = Vec::new();
        let mut feedback = Vec::new();
        for p in &got.items {
            b.history.extend(from.history(&p.id, &all).await?);
            b.ground_truth.extend(from.ground_truth(&p.id).await?);
            b.appointments.extend(from.appointments_for_patient(&p.id).await?);
            sets.extend(from.prediction_sets(&p.id).await?);
            consents.extend(from.consents_for(&p.id).await?);
            documents.extend(from.documents_for(&p.id).await?);
            prescriptions.extend(from.prescriptions_for(&p.id).await?);
            feedback.extend(from.feedback_for(&p.id).await?);
        }
        r.patients += got.items.len() as u64;
        r.history_entries += b.history.len() as u64;
        r.appointments += b.appointments.len() as u64;
        b.patients = got.items;
        to.apply(b).await?;
        for s in &sets {
            match to.put_prediction_set(s).await {
                // Already copied by an earlier, interrupted run.
                Ok(()) | Err(StoreError::Conflict { .. }) => r.prediction_sets += 1,
                Err(e) => return Err(e),
            }
        }
        for c in &consents {
            to.put_consent(c).await?;
            r.consents += 1;
        }
        for d in &documents {
            to.put_document(d).await?;
            r.documents += 1;
        }
        for rx in &prescriptions {
            to.put_prescription(rx).await?;
            r.prescriptions += 1;
        }
        for f in &feedback {
            to.put_feedback(f).await?;
            r.feedback += 1;
        }
        progress(r.patients);
        page = got.next;
    }
    r.audit_entries = copy_audit(from, to).await?;
    for key in from_objects.list("").await? {
        if !to_objects.exists(&key).await? {
            let bytes = from_objects.get(&key).await?;
            r.object_bytes += bytes.len() as u64;
            let copied = to_objects.put(bytes).await?;
            if copied != key {
                return Err(StoreError::Damaged { key: key.to_string() });
            }
        }
        r.objects += 1;
    }
    r.source_digest = digest(from, from_objects).await?;
    r.target_digest = digest(to, to_objects).await?;
    if r.source_digest != r.target_digest {
        return Err(StoreError::Backend {
            backend: "transfer",
            message: format!(
                "copied data differs from the source (digest {} vs {}); the target already held other data?",
                r.target_digest, r.source_digest
            ),
        });
    }
    Ok(r)
}

/// Re-seals the source's audit chain onto the target; the hashes must come out identical.
async fn copy_audit(from: &dyn Store, to: &dyn Store) -> Result<u64> {
    let existing: Vec<AuditEntry> = to.audit_log(0, u32::MAX).await?;
    let mut after = existing.last().map_or(0, |e| e.seq);
    let mut copied = existing.len() as u64;
    loop {
        let chunk = from.audit_log(after, 10_000).await?;
        if chunk.is_empty() {
            break;
        }
        for e in &chunk {
            let sealed = to
                .append_audit(AuditEvent {
                    at: e.at,
                    actor: e.actor.clone(),
                    action: e.action,
                    patient: e.patient.clone(),
                    resource: e.resource.clone(),
                    outcome: e.outcome,
                    reason: e.reason.clone(),
                })
                .await?;
            if sealed.hash != e.hash {
                return Err(StoreError::Backend {
                    backend: "transfer",
                    message: format!("audit entry {} re-sealed to a different hash; the chains diverge", e.seq),
                });
            }
            after = e.seq;
            copied += 1;
        }
    }
    let log = to.audit_log(0, u32::MAX).await?;
    verify_chain(&log, GENESIS_HASH.into()).map_err(|seq| StoreError::Backend {
        backend: "transfer",
        message: format!("audit chain does not verify at entry {seq} after the copy"),
    })?;
    // The signed checkpoints hold for the identical chain, so they travel as they are.
    for cp in from.audit_checkpoints().await? {
        to.put_audit_checkpoint(&cp).await?;
    }
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use carelens_domain::{
        Actor, ActorRole, AuditAction, AuditOutcome, Category, ConsentGrant, ConsentId, Grantee, ProviderId,
    };

    use super::*;
    use crate::conformance::fixtures::*;
    use crate::{LocalObjects, SqliteStore};

    fn stores(dir: &std::path::Path, name: &str) -> (Arc<dyn Store>, Arc<dyn ObjectStore>) {
        (
            Arc::new(SqliteStore::open(dir.join(format!("{name}.sqlite"))).unwrap()),
            Arc::new(LocalObjects::open(dir.join(format!("{name}-objects"))).unwrap()),
        )
    }

    async fn fill(s: &dyn Store, o: &dyn ObjectStore) {
        let p = patient(1);
        s.apply(WriteBatch {
            patients: vec![p.clone(), patient(2)],
            history: vec![
                diagnosis(1, &p.id, date(2024, 1, 1), "E11.9"),
                observation(2, &p.id, date(2024, 2, 1), "4548-4", 7.1),
            ],
            providers: vec![provider(1)],
            appointments: vec![appointment(1, &p.id, &ProviderId::from_number(1), time(2025, 1, 1, 9))],
            ..Default::default()
        })
        .await
        .unwrap();
        s.put_prediction_set(&prediction_set(1, &p.id, 1)).await.unwrap();
        s.put_consent(&ConsentGrant {
            id: ConsentId::from_u128(1),
            patient: p.id.clone(),
            grantee: Grantee::Provider(ProviderId::from_number(1)),
            categories: vec![Category::Diagnosis],
            valid_from: time(2025, 1, 1, 0),
            valid_until: None,
            revoked_at: None,
            emergency_reason: None,
        })
        .await
        .unwrap();
        for i in 0..3 {
            s.append_audit(AuditEvent {
                at: time(2025, 1, 1, i),
                actor: Actor { role: ActorRole::Doctor, id: "dr".into() },
                action: AuditAction::Read,
                patient: Some(p.id.clone()),
                resource: format!("history/{i}"),
                outcome: AuditOutcome::Allowed,
                reason: None,
            })
            .await
            .unwrap();
        }
        s.set_meta("population", "{}").await.unwrap();
        s.put_user(&user(1, "dr.weber", carelens_domain::Role::Doctor)).await.unwrap();
        s.put_feedback(&feedback(1, &p.id, "E11", carelens_domain::Verdict::Confirmed, time(2025, 1, 2, 0)))
            .await
            .unwrap();
        o.put(b"an image".to_vec()).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn copies_everything_and_proves_it_by_digest() {
        let dir = tempfile::tempdir().unwrap();
        let (a, ao) = stores(dir.path(), "a");
        let (b, bo) = stores(dir.path(), "b");
        fill(a.as_ref(), ao.as_ref()).await;
        let r = copy_all(a.as_ref(), ao.as_ref(), b.as_ref(), bo.as_ref(), &|_| {}).await.unwrap();
        assert_eq!(
            (
                r.patients,
                r.history_entries,
                r.prediction_sets,
                r.consents,
                r.audit_entries,
                r.objects,
                r.users,
                r.feedback
            ),
            (2, 2, 1, 1, 3, 1, 1, 1)
        );
        assert_eq!(r.source_digest, r.target_digest);
        // Idempotent: a second run changes nothing.
        let again = copy_all(a.as_ref(), ao.as_ref(), b.as_ref(), bo.as_ref(), &|_| {}).await.unwrap();
        assert_eq!(again.target_digest, r.target_digest);
        // And the digest notices a difference.
        b.set_meta("extra", "x").await.unwrap();
        assert_ne!(digest(b.as_ref(), bo.as_ref()).await.unwrap(), r.source_digest);
    }
}
