//! `carelens records verify | rotate-keys | keygen`: documents' signatures and keys.

use anyhow::{Result, bail};
use carelens_domain::HealthId;
use carelens_records::documents::{self, Verdict};
use carelens_records::keys::{Keyring, MasterKey};
use serde::Serialize;

use crate::context::Context;
use crate::env::{CARELENS_MASTER_KEY, CARELENS_MASTER_KEY_PREVIOUS};
use crate::output;

fn keyring() -> Result<Keyring> {
    match Keyring::from_env()? {
        Some(k) => Ok(k),
        None => bail!(
            "set {CARELENS_MASTER_KEY} to the master key documents were stored with (`carelens records keygen` makes a new one)"
        ),
    }
}

#[derive(Debug, Serialize)]
struct Checked {
    document: String,
    patient: String,
    #[serde(flatten)]
    verdict: Verdict,
}

#[derive(Debug, Serialize)]
struct Report {
    documents: usize,
    valid: usize,
    problems: Vec<Checked>,
}

pub fn verify(ctx: &Context, args: &crate::cli::RecordsVerifyArgs) -> Result<()> {
    let keys = keyring()?;
    let (store, objects) = (ctx.store.as_ref(), ctx.objects.as_ref());
    let results = ctx.runtime.block_on(async {
        match &args.patient {
            Some(p) => {
                let id: HealthId = p.parse()?;
                let mut out = Vec::new();
                for d in store.documents_for(&id).await? {
                    let v = documents::verify_document(store, objects, &keys, &d).await?;
                    out.push((d, v));
                }
                anyhow::Ok(out)
            }
            None => Ok(documents::verify_all(store, objects, &keys).await?),
        }
    })?;
    let report = Report {
        documents: results.len(),
        valid: results.iter().filter(|(_, v)| *v == Verdict::Valid).count(),
        problems: results
            .into_iter()
            .filter(|(_, v)| *v != Verdict::Valid)
            .map(|(d, verdict)| Checked { document: d.id.to_string(), patient: d.patient.to_string(), verdict })
            .collect(),
    };
    if ctx.json {
        output::json(&report)?;
    } else {
        outln!("{} documents, {} valid", report.documents, report.valid);
        for p in &report.problems {
            let what = match &p.verdict {
                Verdict::Tampered(why) => format!("TAMPERED: {why}"),
                Verdict::UnknownSigner => "UNKNOWN SIGNER: not signed by one of the uploader's keys".into(),
                Verdict::Unsigned => "UNSIGNED".into(),
                Verdict::Valid => "valid".into(),
            };
            outln!("  document {} (patient {}): {what}", p.document, p.patient);
        }
    }
    if !report.problems.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}

pub fn rotate_keys(ctx: &Context) -> Result<()> {
    let keys = keyring()?;
    let r = ctx.runtime.block_on(documents::rotate(ctx.store.as_ref(), &keys))?;
    if ctx.json {
        return output::json(&r);
    }
    outln!(
        "re-wrapped {} document keys and {} signing keys under master key {} ({} already were); stored documents unchanged",
        r.documents_rewrapped,
        r.signing_keys_rewrapped,
        keys.current().id(),
        r.already_current
    );
    outln!(
        "When no {CARELENS_MASTER_KEY_PREVIOUS} is needed any more, remove it from the environment and retire the old key."
    );
    Ok(())
}

pub fn keygen(ctx: &Context) -> Result<()> {
    let hex = MasterKey::generate_hex()?;
    let id = MasterKey::from_hex(&hex, CARELENS_MASTER_KEY)?.id().to_owned();
    if ctx.json {
        return output::json(&serde_json::json!({"key": hex, "id": id}));
    }
    outln!("{CARELENS_MASTER_KEY}={hex}");
    outln!("key id: {id}");
    outln!(
        "Keep it in your secret store or KMS, never in the repository or a shell history. Losing it loses every document."
    );
    Ok(())
}
