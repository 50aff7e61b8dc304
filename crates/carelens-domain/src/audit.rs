//! Audit entries form a hash chain: each entry's hash covers its content and the previous
//! entry's hash, so editing or removing an entry breaks every hash after it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::HealthId;

/// The `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorRole {
    Patient,
    Doctor,
    Analyst,
    MlEngineer,
    Admin,
    System,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub role: ActorRole,
    pub id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    Read,
    Create,
    Update,
    Delete,
    Export,
    Share,
    BreakGlass,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    Allowed,
    Denied,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the chain, from 1.
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub actor: Actor,
    pub action: AuditAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<HealthId>,
    /// What was touched: `history/…`, `predictions/…` — ids, never content.
    pub resource: String,
    pub outcome: AuditOutcome,
    /// Why (mandatory for break-the-glass).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditEntry {
    /// Seals an entry onto the chain after `prev` (or as the first one).
    #[allow(clippy::too_many_arguments)]
    pub fn seal(
        prev: Option<&AuditEntry>,
        at: DateTime<Utc>,
        actor: Actor,
        action: AuditAction,
        patient: Option<HealthId>,
        resource: String,
        outcome: AuditOutcome,
        reason: Option<String>,
    ) -> Self {
        let mut e = Self {
            seq: prev.map_or(1, |p| p.seq + 1),
            at,
            actor,
            action,
            patient,
            resource,
            outcome,
            reason,
            prev_hash: prev.map_or_else(|| GENESIS_HASH.to_owned(), |p| p.hash.clone()),
            hash: String::new(),
        };
        e.hash = e.compute_hash();
        e
    }

    /// SHA-256 over the canonical JSON of every field but `hash`.
    pub fn compute_hash(&self) -> String {
        let mut unsealed = self.clone();
        unsealed.hash = String::new();
        let bytes = serde_json::to_vec(&unsealed).unwrap_or_default();
        hex::encode(Sha256::digest(&bytes))
    }
}

/// A signed statement that the chain had `hash` at `seq` at time `at`: the verifier trusts the
/// log up to there only if the entry at `seq` still has that hash, and notices a log that
/// ends before the last checkpoint (truncation). Signed with Ed25519 by the key in
/// `CARELENS_AUDIT_KEY` (`carelens-records` signs and verifies; this is only the record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditCheckpoint {
    pub seq: u64,
    pub hash: String,
    pub at: DateTime<Utc>,
    /// The verifying key, hex (32 bytes).
    pub key: String,
    /// Ed25519 signature over [`AuditCheckpoint::message`], hex (64 bytes).
    pub signature: String,
}

impl AuditCheckpoint {
    /// The bytes the signature covers.
    pub fn message(seq: u64, hash: &str, at: DateTime<Utc>) -> Vec<u8> {
        format!("carelens audit checkpoint\n{seq}\n{hash}\n{}", at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .into_bytes()
    }
}

/// Checks a contiguous run of the chain; returns the `seq` of the first entry that does not
/// verify (edited, reordered, or with a gap before it).
pub fn verify_chain<'a>(entries: impl IntoIterator<Item = &'a AuditEntry>, mut prev_hash: String) -> Result<(), u64> {
    let mut prev_seq: Option<u64> = None;
    for e in entries {
        let seq_ok = prev_seq.is_none_or(|p| e.seq == p + 1);
        if !seq_ok || e.prev_hash != prev_hash || e.hash != e.compute_hash() {
            return Err(e.seq);
        }
        prev_hash = e.hash.clone();
        prev_seq = Some(e.seq);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: usize) -> Vec<AuditEntry> {
        let mut out: Vec<AuditEntry> = Vec::new();
        for i in 0..n {
            let e = AuditEntry::seal(
                out.last(),
                DateTime::from_timestamp(1_700_000_000 + i as i64, 0).unwrap(),
                Actor { role: ActorRole::Doctor, id: "dr-1".into() },
                AuditAction::Read,
                Some(HealthId::from_number(i as u64)),
                format!("history/{i}"),
                AuditOutcome::Allowed,
                None,
            );
            out.push(e);
        }
        out
    }

    #[test]
    fn tampering_is_detected_where_it_happened() {
        let c = chain(5);
        assert_eq!(verify_chain(&c, GENESIS_HASH.into()), Ok(()));
        let mut edited = c.clone();
        edited[2].resource = "history/other".into();
        assert_eq!(verify_chain(&edited, GENESIS_HASH.into()), Err(3));
        let mut removed = c.clone();
        removed.remove(1);
        assert_eq!(verify_chain(&removed, GENESIS_HASH.into()), Err(3));
        let mut resealed = c;
        resealed[4].outcome = AuditOutcome::Denied;
        resealed[4].hash = resealed[4].compute_hash();
        // Resealing the last entry passes locally; anchoring the head hash elsewhere catches it.
        assert_eq!(verify_chain(&resealed, GENESIS_HASH.into()), Ok(()));
        assert_ne!(resealed[4].hash, chain(5)[4].hash);
    }
}
