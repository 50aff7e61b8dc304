//! `carelens migrate`: copy the whole data set to other backends and prove it by checksum.

use anyhow::{Context as _, Result, bail};
use carelens_store::{copy_all, open_objects, open_store, redact_url};
use serde::Serialize;

use crate::cli::MigrateArgs;
use crate::context::Context;
use crate::output::{self, thousands};

#[derive(Serialize)]
struct MigrateReport {
    from_store: String,
    from_objects: String,
    to_store: String,
    to_objects: String,
    #[serde(flatten)]
    copied: carelens_store::TransferReport,
}

pub fn run(ctx: &Context, args: &MigrateArgs) -> Result<()> {
    let (to_store_loc, to_objects_loc) = (redact_url(&args.to_store), redact_url(&args.to_objects));
    if to_store_loc == ctx.store_location && to_objects_loc == ctx.objects_location {
        bail!("--to-store and --to-objects name the source itself; choose other backends");
    }
    let to_store = ctx
        .runtime
        .block_on(open_store(&args.to_store))
        .with_context(|| format!("cannot open the target store (--to-store {to_store_loc})"))?;
    let to_objects = ctx
        .runtime
        .block_on(open_objects(&args.to_objects))
        .with_context(|| format!("cannot open the target object store (--to-objects {to_objects_loc})"))?;
    let total = ctx.runtime.block_on(ctx.store.counts())?.patients;
    let bar = ctx.progress(total, "patients");
    let copied = ctx
        .runtime
        .block_on(copy_all(ctx.store.as_ref(), ctx.objects.as_ref(), to_store.as_ref(), to_objects.as_ref(), &|n| {
            bar.set_position(n)
        }))
        .context("migration failed; it is safe to run the same command again")?;
    bar.finish_and_clear();
    let report = MigrateReport {
        from_store: ctx.store_location.clone(),
        from_objects: ctx.objects_location.clone(),
        to_store: to_store_loc,
        to_objects: to_objects_loc,
        copied,
    };
    if ctx.json {
        return output::json(&report);
    }
    let c = &report.copied;
    outln!("Copied {} ({}) to {} ({}):", report.from_store, report.from_objects, report.to_store, report.to_objects);
    outln!(
        "  {} patients, {} history entries, {} appointments, {} providers",
        thousands(c.patients),
        thousands(c.history_entries),
        thousands(c.appointments),
        thousands(c.providers)
    );
    outln!(
        "  {} prediction sets, {} consents, {} documents, {} audit entries, {} objects ({} bytes)",
        thousands(c.prediction_sets),
        thousands(c.consents),
        thousands(c.documents),
        thousands(c.audit_entries),
        thousands(c.objects),
        thousands(c.object_bytes)
    );
    outln!("  checksum {} on both sides", c.target_digest);
    Ok(())
}
