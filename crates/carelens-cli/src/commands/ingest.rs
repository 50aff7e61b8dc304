//! `carelens ingest images`: files, folders and DICOMDIRs into the store and object store.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result, bail};
use carelens_ingest::{IngestOptions, IngestReport, Manifest, Outcome, PatientMap, collect_files, ingest};

use crate::cli::IngestImagesArgs;
use crate::context::{Bar, Context};
use crate::output;

pub fn run(ctx: &Context, args: &IngestImagesArgs) -> Result<()> {
    let report = run_images(ctx, args, IngestOptions::default())?;
    if ctx.json {
        output::json(&report)?;
    } else {
        print_report(&report);
    }
    if let Some(path) = &args.report {
        fs_err::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    if args.strict && report.failed > 0 {
        bail!("{} of {} files failed", report.failed, report.files.len());
    }
    if report.failed > 0 && report.ingested + report.duplicate == 0 {
        bail!(
            "none of the {} files was ingested ({} failed; the report above says why for each)",
            report.files.len(),
            report.failed
        );
    }
    Ok(())
}

/// Ingests with `base` options plus what the arguments say; used by `demo` too.
pub fn run_images(ctx: &Context, args: &IngestImagesArgs, base: IngestOptions) -> Result<IngestReport> {
    let mut opts = base;
    if let Some(map) = &args.patient_map {
        opts.patient_map = PatientMap::load(map)?;
    }
    if let Some(m) = &args.manifest {
        opts.manifest = Manifest::load(m)?;
    }
    if let Some(l) = &args.labels {
        opts.findings.extend(carelens_ingest::load_labels(l)?);
    }
    if let Some(t) = args.threads {
        opts.threads = t.max(1);
    }
    let files = collect_files(&args.paths, &opts.limits).context("collecting files to ingest")?;
    let bar = ctx.progress(files.len() as u64, "images");
    let report = ctx
        .runtime
        .block_on(ingest(files, &opts, ctx.store.as_ref(), ctx.objects.as_ref(), &Bar(bar.clone())))
        .context("ingesting images")?;
    bar.finish_and_clear();
    Ok(report)
}

pub fn print_report(report: &IngestReport) {
    let per_sec = report.files.len() as f64 / report.seconds.max(1e-9);
    outln!(
        "ingested {} · duplicate {} · skipped {} · failed {} — {} studies, {:.1} MiB stored, {:.1} s ({per_sec:.0} files/s)",
        report.ingested,
        report.duplicate,
        report.skipped,
        report.failed,
        report.studies,
        report.bytes_stored as f64 / (1 << 20) as f64,
        report.seconds
    );
    let mut modalities: BTreeMap<&str, usize> = BTreeMap::new();
    for f in report.files.iter().filter(|f| f.outcome == Outcome::Ingested) {
        *modalities.entry(f.modality.as_deref().unwrap_or("?")).or_default() += 1;
    }
    if !modalities.is_empty() {
        let parts: Vec<String> = modalities.iter().map(|(m, n)| format!("{m} {n}")).collect();
        outln!("  by modality: {}", parts.join(", "));
    }
    const SHOW: usize = 20;
    let problems: Vec<_> =
        report.files.iter().filter(|f| matches!(f.outcome, Outcome::Failed | Outcome::Skipped)).collect();
    for f in problems.iter().take(SHOW) {
        let tag = if f.outcome == Outcome::Failed { "failed " } else { "skipped" };
        outln!("  {tag} {}: {}", f.path.display(), f.reason.as_deref().unwrap_or(""));
    }
    if problems.len() > SHOW {
        outln!("  … and {} more (use --json or --report FILE for every file)", problems.len() - SHOW);
    }
}
