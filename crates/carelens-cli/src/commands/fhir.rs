//! `carelens ingest fhir` (alias `import fhir`) and `carelens export fhir`.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use carelens_domain::{Actor, ActorRole, HealthId};
use carelens_records::fhir;
use carelens_store::PageRequest;

use crate::cli::{ExportFhirArgs, IngestFhirArgs};
use crate::context::Context;
use crate::output;

/// Who the audit log names for work done from the command line.
fn actor() -> Actor {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    Actor { role: ActorRole::Admin, id: format!("cli:{user}") }
}

/// `.json` files under the given paths (folders walked recursively), sorted, each once.
fn bundle_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut stack = vec![p.clone()];
            while let Some(dir) = stack.pop() {
                for e in fs_err::read_dir(&dir)? {
                    let path = e?.path();
                    if path.is_dir() {
                        stack.push(path);
                    } else if path.extension().is_some_and(|x| x.eq_ignore_ascii_case("json")) {
                        files.push(path);
                    }
                }
            }
        } else if p.is_file() {
            files.push(p.clone());
        } else {
            bail!("{}: no such file or folder", p.display());
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

pub fn import(ctx: &Context, args: &IngestFhirArgs) -> Result<()> {
    let files = bundle_files(&args.paths)?;
    if files.is_empty() {
        bail!(
            "no .json files under {}",
            args.paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    let bar = ctx.progress(files.len() as u64, "bundles");
    let started = std::time::Instant::now();
    let summary = ctx.runtime.block_on(fhir::import_files(ctx.store.as_ref(), &files, &actor(), |_| bar.inc(1)));
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    if let Some(path) = &args.report {
        fs_err::write(path, serde_json::to_vec_pretty(&summary)?)?;
    }
    if ctx.json {
        output::json(&summary)?;
    } else {
        print_summary(&summary, seconds);
    }
    let problems = summary.total.problems.len();
    if args.strict && (summary.failed_files > 0 || problems > 0) {
        bail!("{} of {} files failed, {problems} resources had problems", summary.failed_files, summary.files);
    }
    if summary.files > 0 && summary.failed_files == summary.files {
        bail!("none of the {} files could be imported (the report above says why for each)", summary.files);
    }
    Ok(())
}

fn print_summary(s: &fhir::ImportSummary, seconds: f64) {
    let t = &s.total;
    outln!(
        "imported {} of {} bundles: {} patients, {} history entries ({seconds:.1} s)",
        s.files - s.failed_files,
        s.files,
        t.imported.get("Patient").copied().unwrap_or(0),
        t.entries
    );
    let list = |m: &std::collections::BTreeMap<String, u64>| {
        m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
    };
    if !t.imported.is_empty() {
        outln!("  imported:     {}", list(&t.imported));
    }
    if !t.skipped.is_empty() {
        outln!("  skipped:      {}", list(&t.skipped));
    }
    if !t.not_imported.is_empty() {
        outln!("  not imported: {} (carelens does not keep these types)", list(&t.not_imported));
    }
    const SHOW: usize = 20;
    let mut shown = 0;
    for o in &s.outcomes {
        if let Some(e) = &o.error {
            if shown < SHOW {
                outln!("  failed  {}: {e}", o.path.display());
            }
            shown += 1;
        }
        for p in &o.report.problems {
            if shown < SHOW {
                outln!("  problem {}: {p}", o.path.display());
            }
            shown += 1;
        }
    }
    if shown > SHOW {
        outln!("  … and {} more (--report FILE lists them all)", shown - SHOW);
    }
}

pub fn export(ctx: &Context, args: &ExportFhirArgs) -> Result<()> {
    let mut ids: Vec<HealthId> = Vec::new();
    for p in &args.patient {
        ids.push(p.parse().with_context(|| format!("--patient {p}"))?);
    }
    if args.all {
        let mut page = PageRequest::first(1000);
        loop {
            let got = ctx.runtime.block_on(ctx.store.list_patients(page.clone()))?;
            ids.extend(got.items.into_iter().map(|p| p.id));
            match got.next {
                Some(next) => page = next,
                None => break,
            }
        }
    }
    let single = ids.len() == 1 && !args.all && !args.out.is_dir();
    if !single {
        fs_err::create_dir_all(&args.out)?;
    }
    let bar = ctx.progress(ids.len() as u64, "patients");
    let mut written = 0usize;
    for id in &ids {
        let bundle = ctx
            .runtime
            .block_on(fhir::export_patient(ctx.store.as_ref(), id, &actor()))
            .with_context(|| format!("exporting {id}"))?;
        let Some(bundle) = bundle else { bail!("no patient {id} in {}", ctx.store_location) };
        let bytes = serde_json::to_vec_pretty(&bundle)?;
        if single && args.out == Path::new("-") {
            use std::io::Write as _;
            std::io::stdout().write_all(&bytes)?;
        } else if single {
            fs_err::write(&args.out, &bytes)?;
        } else {
            fs_err::write(args.out.join(format!("{id}.json")), &bytes)?;
        }
        written += 1;
        bar.inc(1);
    }
    bar.finish_and_clear();
    if single && args.out == Path::new("-") {
        return Ok(());
    }
    if ctx.json {
        return output::json(&serde_json::json!({"exported": written, "out": args.out.display().to_string()}));
    }
    outln!("exported {written} patient record(s) as FHIR R4 bundles to {}", args.out.display());
    Ok(())
}
