//! `carelens audit`: verify the access log's hash chain and signed checkpoints, sign a
//! checkpoint, make a signing key.

use anyhow::{Context as _, Result, bail};
use carelens_domain::AuditCheckpoint;
use carelens_records::audit::{self, AuditKey, Verification};

use crate::cli::{AuditCheckpointArgs, AuditVerifyArgs};
use crate::context::Context;
use crate::output;

const AUDIT_KEY_ENV: &str = crate::env::CARELENS_AUDIT_KEY;

/// The checkpoint key from the environment, if set.
pub fn key_from_env() -> Result<Option<AuditKey>> {
    match std::env::var(AUDIT_KEY_ENV) {
        Ok(v) if !v.trim().is_empty() => Ok(Some(AuditKey::from_hex(&v)?)),
        _ => Ok(None),
    }
}

pub fn verify(ctx: &Context, args: &AuditVerifyArgs) -> Result<()> {
    let anchor: Option<AuditCheckpoint> = match &args.anchor {
        Some(path) => {
            let text = fs_err::read_to_string(path)?;
            Some(serde_json::from_str(&text).with_context(|| {
                format!("{}: not a checkpoint (write one with `carelens audit checkpoint --out`)", path.display())
            })?)
        }
        None => None,
    };
    let mut trusted = args.trust.clone();
    if trusted.is_empty()
        && let Some(k) = key_from_env()?
    {
        trusted.push(k.public_hex());
    }
    let v = ctx.runtime.block_on(audit::verify(ctx.store.as_ref(), &trusted, anchor.as_ref()))?;
    if ctx.json {
        output::json(&v)?;
    } else {
        print(&v, trusted.is_empty());
    }
    if !v.intact() {
        bail!("the audit log does not verify: {} finding(s), the first: {}", v.findings.len(), v.findings[0]);
    }
    Ok(())
}

fn print(v: &Verification, trusting_any: bool) {
    match &v.head {
        Some((seq, hash)) => outln!("{} entries, head {seq} ({}…)", v.entries, &hash[..12.min(hash.len())]),
        None => outln!("The audit log is empty."),
    }
    match v.signed_up_to {
        Some(s) => outln!(
            "{} signed checkpoint(s), the latest at entry {s}{}",
            v.checkpoints,
            if trusting_any { " (no key given: any key that verifies is accepted; pass --trust KEY)" } else { "" }
        ),
        None => outln!(
            "No signed checkpoint: a rewritten or shortened log cannot be told apart. Set {AUDIT_KEY_ENV} and run `carelens audit checkpoint` (serve does every 5 minutes)."
        ),
    }
    if v.intact() {
        outln!("intact: every entry matches its hash and follows the one before it");
    }
    for f in &v.findings {
        outln!("TAMPERED: {f}");
    }
}

pub fn checkpoint(ctx: &Context, args: &AuditCheckpointArgs) -> Result<()> {
    let Some(key) = key_from_env()? else {
        bail!("set {AUDIT_KEY_ENV} to the signing key (make one with `carelens audit keygen`)");
    };
    let cp = ctx.runtime.block_on(audit::checkpoint(ctx.store.as_ref(), &key, chrono::Utc::now()))?;
    if let Some(out) = &args.out {
        fs_err::write(out, serde_json::to_vec_pretty(&cp)?)?;
    }
    if ctx.json {
        return output::json(&cp);
    }
    outln!("signed entry {} ({}…) with key {}…", cp.seq, &cp.hash[..12], &cp.key[..12]);
    if let Some(out) = &args.out {
        outln!("wrote {}; keep it where the store's administrators cannot change it", out.display());
    }
    Ok(())
}

pub fn keygen(ctx: &Context) -> Result<()> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness from the OS: {e}"))?;
    let (key, secret) = AuditKey::generate(seed);
    if ctx.json {
        return output::json(&serde_json::json!({"secret": secret, "public": key.public_hex()}));
    }
    outln!("{AUDIT_KEY_ENV}={secret}");
    outln!("public key (for `audit verify --trust`): {}", key.public_hex());
    outln!("Keep the secret in your secret store, never in the repository or a shell history.");
    Ok(())
}
