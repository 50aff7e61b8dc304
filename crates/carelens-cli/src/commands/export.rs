//! `carelens export images --deidentify` (stored images out, de-identified), `export features`
//! and `export feedback` (anonymous feature tables for tabular models).

use std::collections::BTreeMap;

use anyhow::{Context as _, Result, bail};
use carelens_domain::{Feedback, HealthId, Verdict};
use carelens_imaging::DeidConfig;
use carelens_ingest::export_deidentified;

use carelens_features::{HistoryFeatures, write_table};
use carelens_store::{HistoryFilter, PageRequest};

use crate::cli::{ExportFeaturesArgs, ExportFeedbackArgs, ExportImagesArgs};
use crate::context::{Bar, Context};
use crate::{env, output};

pub fn run(ctx: &Context, args: &ExportImagesArgs) -> Result<()> {
    if !args.deidentify {
        bail!(
            "identified exports are not available: they need the consent checks of the records module; \
             pass --deidentify for a de-identified export"
        );
    }
    let secret = std::env::var(env::CARELENS_DEID_SECRET).unwrap_or_default();
    if secret.chars().count() < 16 {
        bail!(
            "set {} to a secret of at least 16 characters: pseudonyms, UIDs and date shifts derive from it, \
             so the same secret gives consistent exports (keep it out of the repository)",
            env::CARELENS_DEID_SECRET
        );
    }
    let cfg = DeidConfig { secret: secret.as_bytes(), allow_burned_in: args.allow_burned_in };
    let bar = ctx.progress(0, "patients");
    let report = ctx
        .runtime
        .block_on(export_deidentified(ctx.store.as_ref(), ctx.objects.as_ref(), &args.out, &cfg, &Bar(bar.clone())))
        .context("exporting images")?;
    bar.finish_and_clear();
    if ctx.json {
        return output::json(&report);
    }
    outln!(
        "exported {} images of {} studies, {} patients → {} (labels: {})",
        report.exported,
        report.studies,
        report.patients,
        report.out.display(),
        report.labels.display()
    );
    for p in report.refused.iter().take(10) {
        outln!("  refused {}: {}", p.instance, p.reason);
    }
    for p in report.failed.iter().take(10) {
        outln!("  failed  {}: {}", p.instance, p.reason);
    }
    if report.refused.len() + report.failed.len() > 20 {
        outln!("  … use --json for every image");
    }
    Ok(())
}

/// `carelens export features`: one anonymous feature row per patient, built with polars.
pub fn features(ctx: &Context, args: &ExportFeaturesArgs) -> Result<()> {
    let population = super::generate::population(ctx)?;
    let as_of = args.as_of.or(population.map(|p| p.as_of)).unwrap_or_else(|| chrono::Utc::now().date_naive());
    let mut features = HistoryFeatures::new(as_of, &args.diagnosis)?;
    let total = ctx.runtime.block_on(ctx.store.counts())?.patients;
    let bar = ctx.progress(total, "patients");
    let all = HistoryFilter::default();
    let mut page = Some(PageRequest::first(1000));
    while let Some(req) = page {
        let got = ctx.runtime.block_on(ctx.store.list_patients(req)).context("listing patients")?;
        for p in &got.items {
            let history = ctx.runtime.block_on(ctx.store.history(&p.id, &all)).context("reading a history")?;
            features.add(p.sex, p.birth_date, &history);
            bar.inc(1);
        }
        page = got.next;
    }
    bar.finish_and_clear();
    let target = features.target_column();
    let mut df = features.finish()?;
    let bytes = write_table(&mut df, &args.out)?;
    let positives = df.column(&target)?.str()?.iter().filter(|v| *v == Some("yes")).count();
    if ctx.json {
        return output::json(&serde_json::json!({
            "out": args.out.display().to_string(),
            "rows": df.height(),
            "columns": df.get_column_names().iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            "target": target,
            "positives": positives,
            "as_of": as_of,
            "bytes": bytes,
        }));
    }
    outln!(
        "wrote {} rows × {} columns ({} KiB) → {} (as of {as_of}; {target}: {positives} yes, {} no)",
        df.height(),
        df.width(),
        bytes.div_ceil(1024),
        args.out.display(),
        df.height() - positives
    );
    outln!(
        "train on it: carelens train tabular --data {} --target {target} --positive yes --model {}",
        args.out.display(),
        target.replace('_', "-").to_lowercase()
    );
    Ok(())
}

/// `carelens export feedback`: doctors' latest verdict per patient on one diagnosis category,
/// as the target of an anonymous feature table that `carelens train tabular` reads.
pub fn feedback(ctx: &Context, args: &ExportFeedbackArgs) -> Result<()> {
    let population = super::generate::population(ctx)?;
    let as_of = args.as_of.or(population.map(|p| p.as_of)).unwrap_or_else(|| chrono::Utc::now().date_naive());
    let mut features = HistoryFeatures::new(as_of, &args.diagnosis)?;
    let category = args.diagnosis.trim().to_ascii_uppercase();
    let all = ctx.runtime.block_on(ctx.store.all_feedback()).context("reading feedback")?;
    // Latest verdict per patient on this category (a later verdict overrides an earlier one).
    let mut latest: BTreeMap<HealthId, &Feedback> = BTreeMap::new();
    let mut other_codes: BTreeMap<String, usize> = BTreeMap::new();
    for f in &all {
        if f.code.category() != category {
            *other_codes.entry(f.code.category().to_string()).or_default() += 1;
            continue;
        }
        let slot = latest.entry(f.patient.clone()).or_insert(f);
        if f.at >= slot.at {
            *slot = f;
        }
    }
    if latest.is_empty() {
        let have: Vec<String> = other_codes.iter().map(|(c, n)| format!("{c} ({n})")).collect();
        bail!(
            "no feedback on {category} yet: doctors confirm or reject suggestions in the web view (`carelens serve`) or \
             with POST /api/v1/patients/{{id}}/feedback{}",
            if have.is_empty() { String::new() } else { format!("; verdicts exist for {}", have.join(", ")) }
        );
    }
    let all_history = HistoryFilter::default();
    let bar = ctx.progress(latest.len() as u64, "patients");
    let (mut confirmed, mut rejected, mut missing) = (0usize, 0usize, 0usize);
    for (id, f) in &latest {
        bar.inc(1);
        let Some(p) = ctx.runtime.block_on(ctx.store.get_patient(id))? else {
            missing += 1;
            continue;
        };
        let history = ctx.runtime.block_on(ctx.store.history(id, &all_history)).context("reading a history")?;
        let yes = f.verdict == Verdict::Confirmed;
        if features.add_labelled(p.sex, p.birth_date, &history, yes) {
            if yes { confirmed += 1 } else { rejected += 1 }
        }
    }
    bar.finish_and_clear();
    let target = features.target_column();
    let mut df = features.finish()?;
    let bytes = write_table(&mut df, &args.out)?;
    if ctx.json {
        return output::json(&serde_json::json!({
            "out": args.out.display().to_string(),
            "rows": df.height(),
            "columns": df.get_column_names().iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            "target": target,
            "confirmed": confirmed,
            "rejected": rejected,
            "patients_missing": missing,
            "as_of": as_of,
            "bytes": bytes,
        }));
    }
    outln!(
        "wrote {} rows × {} columns ({} KiB) → {} (as of {as_of}; {target}: {confirmed} confirmed, {rejected} rejected)",
        df.height(),
        df.width(),
        bytes.div_ceil(1024),
        args.out.display()
    );
    if missing > 0 {
        outln!("{missing} patients with feedback are no longer in the store and were left out");
    }
    Ok(())
}
