//! Verifying the audit log: the hash chain says whether any entry was edited, removed,
//! inserted or moved; Ed25519-signed checkpoints say whether the chain was rewritten from some
//! point on (resealed) or cut short (truncated). The verifier walks the log once, in pages,
//! keeping only the previous entry, and reports every finding with the `seq` it concerns.

use std::collections::BTreeMap;

use carelens_domain::{AuditCheckpoint, AuditEntry, GENESIS_HASH};
use carelens_store::{Store, StoreError};
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::Serialize;

/// The environment variable that holds the checkpoint signing key (64 hex digits: an Ed25519
/// seed). Never put it in the repository or a command line.
pub const AUDIT_KEY_ENV: &str = "CARELENS_AUDIT_KEY";

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{AUDIT_KEY_ENV} must be 64 hex digits (an Ed25519 seed); generate one with `carelens audit keygen`")]
    BadKey,
    #[error("the audit log is empty: nothing to checkpoint")]
    Empty,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The key that signs checkpoints.
#[derive(Clone)]
pub struct AuditKey(SigningKey);

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditKey({})", self.public_hex())
    }
}

impl AuditKey {
    pub fn from_hex(seed: &str) -> Result<Self, AuditError> {
        let bytes: [u8; 32] =
            hex::decode(seed.trim()).ok().and_then(|b| b.try_into().ok()).ok_or(AuditError::BadKey)?;
        Ok(Self(SigningKey::from_bytes(&bytes)))
    }

    /// From [`AUDIT_KEY_ENV`]; `None` when it is unset.
    pub fn from_env() -> Result<Option<Self>, AuditError> {
        match std::env::var(AUDIT_KEY_ENV) {
            Ok(v) if !v.trim().is_empty() => Self::from_hex(&v).map(Some),
            _ => Ok(None),
        }
    }

    /// A new key from 32 random bytes; `seed_hex` goes into [`AUDIT_KEY_ENV`].
    pub fn generate(random: [u8; 32]) -> (Self, String) {
        (Self(SigningKey::from_bytes(&random)), hex::encode(random))
    }

    /// The verifying key, hex: what a verifier trusts.
    pub fn public_hex(&self) -> String {
        hex::encode(self.0.verifying_key().as_bytes())
    }

    pub fn sign(&self, head: &AuditEntry, at: DateTime<Utc>) -> AuditCheckpoint {
        let at = DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or(at);
        let sig = self.0.sign(&AuditCheckpoint::message(head.seq, &head.hash, at));
        AuditCheckpoint {
            seq: head.seq,
            hash: head.hash.clone(),
            at,
            key: self.public_hex(),
            signature: hex::encode(sig.to_bytes()),
        }
    }
}

/// Signs the chain's current head and keeps the checkpoint in the store.
pub async fn checkpoint(store: &dyn Store, key: &AuditKey, now: DateTime<Utc>) -> Result<AuditCheckpoint, AuditError> {
    let mut head = None;
    let mut after = 0;
    loop {
        let page = store.audit_rows(after, 10_000).await?;
        let Some(&(last, _)) = page.last() else { break };
        after = last;
        head = page.into_iter().last().map(|(_, e)| e);
    }
    let head = head.ok_or(AuditError::Empty)?;
    let cp = key.sign(&head, now);
    store.put_audit_checkpoint(&cp).await?;
    Ok(cp)
}

/// What is wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// The entry's content no longer matches its hash.
    Modified { seq: u64 },
    /// Entries `from..=to` are gone (deleted).
    Missing { from: u64, to: u64 },
    /// The entry does not link to the entry before it in the chain: something between them was
    /// replaced, or the chain was rewritten from here.
    Unlinked { seq: u64, after: u64 },
    /// The entry is in the wrong place: it comes after entry `after`.
    Reordered { seq: u64, after: u64 },
    /// A second entry with this seq: one was inserted.
    Duplicate { seq: u64 },
    /// A checkpoint's entry has a different hash now: the chain up to it was rewritten.
    CheckpointMismatch { seq: u64 },
    /// The log ends before a signed checkpoint (or the anchor): its tail was cut off.
    Truncated { last: u64, signed: u64 },
    /// A checkpoint whose signature does not verify, or by a key that is not trusted.
    BadCheckpoint { seq: u64, reason: String },
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Modified { seq } => write!(f, "entry {seq} was modified (its content no longer matches its hash)"),
            Self::Missing { from, to } if from == to => write!(f, "entry {from} is missing (deleted)"),
            Self::Missing { from, to } => write!(f, "entries {from} to {to} are missing (deleted)"),
            Self::Unlinked { seq, after } => write!(
                f,
                "entry {seq} does not link to entry {after}: an entry was replaced, or the chain was rewritten from here"
            ),
            Self::Reordered { seq, after } => write!(f, "entry {seq} was moved: it comes after entry {after}"),
            Self::Duplicate { seq } => write!(f, "entry {seq} appears twice: an entry was inserted"),
            Self::CheckpointMismatch { seq } => {
                write!(f, "entry {seq} differs from what its signed checkpoint says: the chain up to it was rewritten")
            }
            Self::Truncated { last, signed } => {
                write!(f, "the log ends at entry {last} but entry {signed} was signed: its tail was cut off")
            }
            Self::BadCheckpoint { seq, reason } => write!(f, "the checkpoint at entry {seq} is not valid: {reason}"),
        }
    }
}

/// The outcome of a verification.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub entries: u64,
    /// The last entry's seq and hash.
    pub head: Option<(u64, String)>,
    pub checkpoints: usize,
    /// The highest seq a valid signature vouches for.
    pub signed_up_to: Option<u64>,
    pub findings: Vec<Finding>,
}

impl Verification {
    pub fn intact(&self) -> bool {
        self.findings.is_empty()
    }
}

/// At most this many findings are listed (the first ones: where tampering starts).
pub const MAX_FINDINGS: usize = 100;

/// How many recent entries' hashes the walk keeps to check links of entries that come out of
/// order (memory stays bounded however long the log).
const RECENT: u64 = 10_000;

/// Walks the chain page by page in the store's order. Each entry must hash to what it says,
/// and link to the hash of entry `seq - 1` wherever that came; seqs must run without gaps or
/// repeats. A gap that a later entry fills was a move, not a deletion.
pub struct ChainWalk {
    max_seq: u64,
    prev_seq: u64,
    recent: BTreeMap<u64, String>,
    entries: u64,
    findings: Vec<Finding>,
    checkpoints: BTreeMap<u64, String>,
    head: Option<(u64, String)>,
}

impl ChainWalk {
    /// `checkpoints`: seq → hash from checkpoints whose signatures verified.
    pub fn new(checkpoints: BTreeMap<u64, String>) -> Self {
        let recent = BTreeMap::from([(0, GENESIS_HASH.to_owned())]);
        Self { max_seq: 0, prev_seq: 0, recent, entries: 0, findings: Vec::new(), checkpoints, head: None }
    }

    fn find(&mut self, f: Finding) {
        if self.findings.len() < MAX_FINDINGS {
            self.findings.push(f);
        }
    }

    /// Takes `seq` out of a gap reported earlier; whether it was in one.
    fn fill_gap(&mut self, seq: u64) -> bool {
        let Some(i) = self
            .findings
            .iter()
            .position(|f| matches!(f, Finding::Missing { from, to } if (*from..=*to).contains(&seq)))
        else {
            return false;
        };
        let Finding::Missing { from, to } = self.findings.remove(i) else { return false };
        let mut rest = Vec::new();
        if from < seq {
            rest.push(Finding::Missing { from, to: seq - 1 });
        }
        if seq < to {
            rest.push(Finding::Missing { from: seq + 1, to });
        }
        for (k, f) in rest.into_iter().enumerate() {
            self.findings.insert(i + k, f);
        }
        true
    }

    pub fn feed(&mut self, e: &AuditEntry) {
        self.entries += 1;
        if e.hash != e.compute_hash() {
            self.find(Finding::Modified { seq: e.seq });
        }
        if e.seq > self.max_seq + 1 {
            self.find(Finding::Missing { from: self.max_seq + 1, to: e.seq - 1 });
        } else if e.seq <= self.max_seq {
            if self.fill_gap(e.seq) {
                self.find(Finding::Reordered { seq: e.seq, after: self.prev_seq });
            } else {
                self.find(Finding::Duplicate { seq: e.seq });
            }
        }
        if let Some(h) = self.recent.get(&(e.seq.wrapping_sub(1)))
            && *h != e.prev_hash
        {
            self.find(Finding::Unlinked { seq: e.seq, after: e.seq - 1 });
        }
        if let Some(h) = self.checkpoints.get(&e.seq)
            && *h != e.hash
        {
            self.find(Finding::CheckpointMismatch { seq: e.seq });
        }
        self.recent.insert(e.seq, e.hash.clone());
        self.max_seq = self.max_seq.max(e.seq);
        self.prev_seq = e.seq;
        while self.recent.len() as u64 > RECENT {
            self.recent.pop_first();
        }
        if self.head.as_ref().is_none_or(|(s, _)| e.seq >= *s) {
            self.head = Some((e.seq, e.hash.clone()));
        }
    }

    pub fn finish(mut self, checkpoints: usize, mut findings: Vec<Finding>) -> Verification {
        let last = self.max_seq;
        let signed_up_to = self.checkpoints.keys().next_back().copied();
        if let Some(signed) = signed_up_to
            && signed > last
        {
            self.find(Finding::Truncated { last, signed });
        }
        findings.append(&mut self.findings);
        Verification { entries: self.entries, head: self.head, checkpoints, signed_up_to, findings }
    }
}

/// Checks a checkpoint's signature against the trusted keys (hex); an empty list trusts the
/// key each checkpoint names (the signature still has to verify).
pub fn check_checkpoint(cp: &AuditCheckpoint, trusted: &[String]) -> Result<(), String> {
    if !trusted.is_empty() && !trusted.iter().any(|k| k.eq_ignore_ascii_case(&cp.key)) {
        return Err(format!("signed by key {}…, which is not trusted", &cp.key[..cp.key.len().min(12)]));
    }
    let key: [u8; 32] =
        hex::decode(&cp.key).ok().and_then(|b| b.try_into().ok()).ok_or("the key is not 32 bytes of hex")?;
    let key = VerifyingKey::from_bytes(&key).map_err(|_| "the key is not an Ed25519 point")?;
    let sig: [u8; 64] = hex::decode(&cp.signature)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("the signature is not 64 bytes of hex")?;
    key.verify(&AuditCheckpoint::message(cp.seq, &cp.hash, cp.at), &Signature::from_bytes(&sig))
        .map_err(|_| "the signature does not verify".to_owned())
}

/// Verifies the whole log in `store`: the chain, every stored checkpoint, and `anchor` (a
/// checkpoint kept outside the store, e.g. from `carelens audit checkpoint --out`), which
/// also catches a tail cut off together with its checkpoints.
pub async fn verify(
    store: &dyn Store,
    trusted: &[String],
    anchor: Option<&AuditCheckpoint>,
) -> Result<Verification, AuditError> {
    let mut stored = store.audit_checkpoints().await?;
    stored.extend(anchor.cloned());
    let mut findings = Vec::new();
    let mut vouched = BTreeMap::new();
    for cp in &stored {
        match check_checkpoint(cp, trusted) {
            Ok(()) => {
                vouched.insert(cp.seq, cp.hash.clone());
            }
            Err(reason) => findings.push(Finding::BadCheckpoint { seq: cp.seq, reason }),
        }
    }
    let mut walk = ChainWalk::new(vouched);
    let mut after = 0;
    loop {
        let page = store.audit_rows(after, 10_000).await?;
        let Some(&(last, _)) = page.last() else { break };
        after = last;
        for (_, e) in &page {
            walk.feed(e);
        }
    }
    Ok(walk.finish(stored.len(), findings))
}
