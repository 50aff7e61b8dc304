//! `carelens export images --deidentify`: stored images out, de-identified.

use anyhow::{Context as _, Result, bail};
use carelens_imaging::DeidConfig;
use carelens_ingest::export_deidentified;

use crate::cli::ExportImagesArgs;
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
