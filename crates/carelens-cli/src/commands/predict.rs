//! `carelens predict`, `carelens train fusion` and `carelens predictions show`.

use anyhow::{Context as _, Result, bail};
use carelens_domain::{HealthId, PredictionSet, RiskBand};
use carelens_ml::Registry;
use carelens_predict::{
    BatchOptions, BatchReport, DiagnosisEvaluation, FitOptions, FitReport, Models, evaluate_sets, fit_fusion,
};
use carelens_store::{ObjectStore, Store};
use chrono::NaiveDate;
use serde::Serialize;

use super::backend;
use crate::cli::{PredictArgs, ShowPredictionsArgs, TrainFusionArgs};
use crate::context::{Context, Light};
use crate::output;

/// The population's generation date, else today.
pub fn default_as_of(ctx: &Context) -> Result<NaiveDate> {
    Ok(super::generate::population(ctx)?.map(|p| p.as_of).unwrap_or_else(|| chrono::Utc::now().date_naive()))
}

fn load_models(light: &Light, fusion: bool) -> Result<Models<backend::InferBackend>> {
    let registry = Registry::new(&light.models);
    Models::load(&registry, fusion, &backend::device())
        .with_context(|| format!("loading the models in {}", light.models.display()))
}

#[derive(Debug, Serialize)]
pub struct PredictReport {
    pub as_of: NaiveDate,
    pub models: Vec<String>,
    pub fusion: Option<String>,
    pub skipped_models: Vec<(String, String)>,
    #[serde(flatten)]
    pub batch: BatchReport,
    /// Against the store's ground truth, when it has any (synthetic populations).
    pub evaluation: Vec<DiagnosisEvaluation>,
}

/// Runs the batch over the store; used by `predict` and `demo`.
pub fn predict(ctx: &Context, light: &Light, args: &PredictArgs) -> Result<PredictReport> {
    let as_of = match args.as_of {
        Some(d) => d,
        None => default_as_of(ctx)?,
    };
    let mut opts = BatchOptions::new(as_of);
    opts.heatmaps = !args.no_heatmaps;
    opts.since = args.since;
    opts.chunk = args.chunk as usize;
    if let Some(ids) = &args.patients {
        let parsed: Result<Vec<HealthId>> = ids
            .iter()
            .map(|s| s.trim().parse::<HealthId>().map_err(|e| anyhow::anyhow!("--patients {s:?}: {e}")))
            .collect();
        opts.patients = Some(parsed?);
    }
    let total = match &opts.patients {
        Some(ids) => ids.len() as u64,
        None => ctx.runtime.block_on(ctx.store.counts())?.patients,
    };
    let bar = ctx.progress(total, "patients");
    let report =
        predict_batch(&*ctx.store, &*ctx.objects, ctx.runtime.handle(), light, !args.no_fusion, &opts, &|n| bar.inc(n));
    bar.finish_and_clear();
    report
}

/// The batch itself, on any thread outside the runtime (the CLI's main thread, or the
/// server's blocking pool for runs started over HTTP).
pub fn predict_batch(
    store: &dyn Store,
    objects: &dyn ObjectStore,
    runtime: &tokio::runtime::Handle,
    light: &Light,
    fusion: bool,
    opts: &BatchOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<PredictReport> {
    let models = load_models(light, fusion)?;
    if models.image.is_empty() && models.tabular.is_empty() {
        bail!(
            "the registry {} has no image model trained on DICOM studies and no history model (no <name>/v<N>/model.json \
             inside): leave --models and CARELENS_MODELS unset for the models bundled with carelens, or train one with \
             `carelens train image` / `carelens train tabular`",
            light.models.display()
        );
    }
    let device = backend::device();
    let (batch, outcomes) =
        runtime.block_on(carelens_predict::run(store, objects, &models, opts, &device, progress))?;
    let ids: Vec<HealthId> = outcomes.into_iter().map(|(id, _)| id).collect();
    let has_truth = runtime.block_on(store.counts())?.ground_truth_by_condition.values().any(|&n| n > 0);
    let evaluation = if has_truth { runtime.block_on(evaluate_sets(store, &models, &ids))? } else { vec![] };
    Ok(PredictReport {
        as_of: opts.as_of,
        models: models.refs().iter().map(|m| format!("{}@{}", m.name, m.version)).collect(),
        fusion: models.fusion.as_ref().map(|f| format!("{}@{}", f.model.name, f.model.version)),
        skipped_models: models.skipped.clone(),
        batch,
        evaluation,
    })
}

fn fmt_auroc(a: Option<f64>) -> String {
    a.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.3}"))
}

pub fn print_human(r: &PredictReport) {
    let b = &r.batch;
    outln!(
        "{} patients: {} new prediction sets, {} unchanged, {} without any source, {} failed, {} skipped by --since ({} heatmaps; {:.1} s, {:.1} patients/s computed)",
        b.considered,
        b.new_sets,
        b.unchanged,
        b.no_sources,
        b.failed.len(),
        b.skipped_by_since,
        b.heatmaps,
        b.seconds,
        b.patients_per_second
    );
    outln!("models: {}", r.models.join(", "));
    if r.fusion.is_none() {
        outln!("no fusion model: each diagnosis takes its best source; fit one with `carelens train fusion`");
    }
    for (m, why) in &r.skipped_models {
        outln!("not used: {m}: {why}");
    }
    for f in b.failed.iter().take(10) {
        outln!("  failed {}: {}", f.patient, f.reason);
    }
    if b.failed.len() > 10 {
        outln!("  … {} more; --json lists them all", b.failed.len() - 10);
    }
    if !r.evaluation.is_empty() {
        outln!(
            "\nagainst the ground truth (AUROC of the fused probability, of the naive mean of the sources, and of each \
             source next to the fused probability on the patients it covers):"
        );
        outln!("{:<8} {:>8} {:>6} {:>7} {:>7}   sources", "code", "patients", "pos", "fused", "mean");
        for d in &r.evaluation {
            let sources: Vec<String> = d
                .sources
                .iter()
                .map(|s| {
                    format!(
                        "{} {} vs fused {} (n={})",
                        s.source,
                        fmt_auroc(s.source_auroc),
                        fmt_auroc(s.fused_auroc),
                        s.patients
                    )
                })
                .collect();
            outln!(
                "{:<8} {:>8} {:>6} {:>7} {:>7}   {}",
                d.code,
                d.patients,
                d.positives,
                fmt_auroc(d.fused_auroc),
                fmt_auroc(d.mean_of_sources_auroc),
                sources.join("; ")
            );
        }
    }
}

pub fn run(ctx: &Context, light: &Light, args: &PredictArgs) -> Result<()> {
    let report = predict(ctx, light, args)?;
    if ctx.json {
        return output::json(&report);
    }
    print_human(&report);
    Ok(())
}

pub fn train_fusion(ctx: &Context, light: &Light, args: &TrainFusionArgs) -> Result<()> {
    let registry = Registry::new(&light.models);
    let models = load_models(light, false)?;
    let as_of = match args.as_of {
        Some(d) => d,
        None => default_as_of(ctx)?,
    };
    let opts =
        FitOptions { as_of, limit: args.limit, l2: args.l2, folds: args.folds as usize, seed: args.seed, chunk: 64 };
    if !args.l2.is_finite() || args.l2 < 0.0 {
        bail!("--l2 must be a non-negative number");
    }
    let total = ctx.runtime.block_on(ctx.store.counts())?.patients.min(args.limit.map_or(u64::MAX, |l| l as u64));
    let bar = ctx.progress(total, "patients");
    let device = backend::device();
    let (mut manifest, report) =
        ctx.runtime.block_on(fit_fusion(&*ctx.store, &*ctx.objects, &models, &opts, &device, &|n| bar.inc(n)))?;
    bar.finish_and_clear();
    let version = registry.save(&mut manifest, &[] as &[(&str, Vec<u8>)])?;
    #[derive(Serialize)]
    struct Out<'a> {
        model: &'a str,
        version: u32,
        #[serde(flatten)]
        report: &'a FitReport,
    }
    if ctx.json {
        return output::json(&Out { model: "fusion", version, report: &report });
    }
    outln!(
        "fusion v{version} fitted on {} patients ({} failed) as of {as_of}; labels: {}",
        report.patients,
        report.failed,
        report.label_source
    );
    outln!("cross-fitted AUROC, fused vs each source alone (each recalibrated with its presence):");
    for d in &report.diagnoses {
        let s: Vec<String> = d.source_aurocs.iter().map(|(k, a)| format!("{k} {a:.3}")).collect();
        outln!(
            "  {:<6} {:<40} n={:<6} pos={:<5} fused {:.3} | {}",
            d.code,
            d.display,
            d.examples,
            d.positives,
            d.fused_auroc,
            s.join(", ")
        );
    }
    for (code, why) in &report.skipped {
        outln!("  not fitted: {code}: {why}");
    }
    outln!("model card: {}", registry.dir("fusion", version).join("MODEL_CARD.md").display());
    Ok(())
}

fn band(b: RiskBand) -> &'static str {
    match b {
        RiskBand::Low => "low",
        RiskBand::Medium => "medium",
        RiskBand::High => "HIGH",
    }
}

pub fn print_set(set: &PredictionSet) {
    outln!(
        "{} prediction set v{} ({}, fusion: {})",
        set.patient,
        set.version,
        set.created_at.format("%Y-%m-%d %H:%M UTC"),
        set.fusion.get("method").and_then(|m| m.as_str()).unwrap_or("?")
    );
    for p in &set.predictions {
        let sources: Vec<String> =
            p.sources.iter().map(|s| format!("{}:{} {:.2}", s.model.name, s.label, s.probability.get())).collect();
        outln!(
            "  {:<6} {:<45} {:>5.1} % {:<6}{} [{}]{}",
            p.code.as_str(),
            p.display,
            p.probability.get() * 100.0,
            band(p.risk_band),
            if p.known { " (known)" } else { "" },
            sources.join(", "),
            if p.evidence.is_empty() { String::new() } else { format!(" +{} evidence", p.evidence.len()) }
        );
    }
}

pub fn show(ctx: &Context, args: &ShowPredictionsArgs) -> Result<()> {
    let id: HealthId = args.patient.trim().parse().map_err(|e| anyhow::anyhow!("{:?}: {e}", args.patient))?;
    let sets = if args.all {
        ctx.runtime.block_on(ctx.store.prediction_sets(&id))?
    } else {
        ctx.runtime.block_on(ctx.store.latest_prediction_set(&id))?.into_iter().collect()
    };
    if sets.is_empty() {
        bail!("no prediction set for {id}; run `carelens predict --patients {id}`");
    }
    if ctx.json {
        return if args.all { output::json(&sets) } else { output::json(&sets[0]) };
    }
    for s in &sets {
        print_set(s);
    }
    Ok(())
}
