//! `carelens export analytics` (the pseudonymised Parquet snapshot, into the object store)
//! and `carelens kpi list|show|run` (the KPI catalogue over the latest snapshot).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use carelens_analytics::snapshot::Manifest;
use carelens_analytics::{Period, Query, Snapshot, output};
use carelens_domain::ObjectKey;
use carelens_server::kpis::{cache_name, export_snapshot as export_to, latest_snapshot as latest};

use crate::cli::{ExportAnalyticsArgs, KpiFormat, KpiRunArgs, KpiShowArgs};
use crate::context::Context;
use crate::env;

/// Where snapshots are kept (and downloaded to) in the data directory.
pub fn cache_dir(ctx: &Context) -> PathBuf {
    ctx.data_dir.join("analytics")
}

fn pseudonym_key() -> Result<(Vec<u8>, bool)> {
    match std::env::var(env::CARELENS_PSEUDONYM_KEY) {
        Ok(k) if k.chars().count() >= 16 => Ok((k.into_bytes(), true)),
        Ok(_) => bail!("{} must have at least 16 characters", env::CARELENS_PSEUDONYM_KEY),
        Err(_) => {
            let mut key = vec![0u8; 32];
            getrandom::fill(&mut key).map_err(|e| anyhow!("no randomness for the pseudonym key: {e}"))?;
            Ok((key, false))
        }
    }
}

#[derive(serde::Serialize)]
struct ExportReport {
    manifest_key: String,
    dir: PathBuf,
    as_of: chrono::NaiveDate,
    pseudonyms: String,
    tables: Vec<(String, u64, usize)>,
    bytes: u64,
    seconds: f64,
}

/// Writes the snapshot of everything in the store; returns the manifest's object key and
/// the local directory.
pub fn export_snapshot(
    ctx: &Context,
    out: Option<&Path>,
    as_of: Option<chrono::NaiveDate>,
) -> Result<(ObjectKey, PathBuf, Manifest)> {
    let population = super::generate::population(ctx)?;
    let as_of = as_of.or(population.map(|p| p.as_of)).unwrap_or_else(|| chrono::Utc::now().date_naive());
    let dir = match out {
        Some(d) => d.to_owned(),
        None => {
            let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3f");
            cache_dir(ctx).join(format!("tmp-{stamp}"))
        }
    };
    let (key, stable) = pseudonym_key()?;
    let bar = ctx.progress(0, "patients");
    let progress = |stage: &str, total: Option<u64>| match total {
        Some(n) => {
            bar.set_message(stage.to_owned());
            bar.set_position(0);
            bar.set_length(n);
        }
        None => bar.inc(1),
    };
    let (key, manifest) = ctx
        .runtime
        .block_on(export_to(ctx.store.as_ref(), ctx.objects.as_ref(), &dir, as_of, &key, stable, &progress))
        .context("exporting the analytics snapshot")?;
    bar.finish_and_clear();
    let dir = if out.is_none() {
        let cached = cache_dir(ctx).join(cache_name(&key));
        if cached.exists() {
            fs_err::remove_dir_all(&cached)?;
        }
        fs_err::rename(&dir, &cached)?;
        // Only the latest snapshot is read; older local copies go (their objects stay).
        for entry in fs_err::read_dir(cache_dir(ctx))? {
            let path = entry?.path();
            if path != cached && path.is_dir() {
                fs_err::remove_dir_all(&path)?;
            }
        }
        cached
    } else {
        dir
    };
    Ok((key, dir, manifest))
}

pub fn export(ctx: &Context, args: &ExportAnalyticsArgs) -> Result<()> {
    let started = std::time::Instant::now();
    let (key, dir, manifest) = export_snapshot(ctx, args.out.as_deref(), args.as_of)?;
    let report = ExportReport {
        manifest_key: key.as_str().to_owned(),
        dir,
        as_of: manifest.as_of,
        pseudonyms: manifest.pseudonyms.clone(),
        tables: manifest.tables.iter().map(|(n, t)| (n.clone(), t.rows, t.files.len())).collect(),
        bytes: manifest.files().map(|f| f.bytes).sum(),
        seconds: started.elapsed().as_secs_f64(),
    };
    if ctx.json {
        return crate::output::json(&report);
    }
    outln!(
        "analytics snapshot as of {} ({} pseudonyms), {} in {:.1} s",
        report.as_of,
        report.pseudonyms,
        human_bytes(report.bytes),
        report.seconds
    );
    for (name, rows, files) in &report.tables {
        outln!("  {name:<13} {:>11} rows in {files} files", crate::output::thousands(*rows));
    }
    outln!("  manifest: {} (object store), files in {}", report.manifest_key, report.dir.display());
    outln!("next: carelens kpi list");
    Ok(())
}

fn human_bytes(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / f64::from(1 << 20))
    } else {
        format!("{:.1} KiB", n as f64 / 1024.0)
    }
}

/// The latest snapshot, downloaded from the object store into the data directory if needed.
pub fn latest_snapshot(ctx: &Context) -> Result<Snapshot> {
    let cache = cache_dir(ctx);
    Ok(ctx.runtime.block_on(latest(ctx.store.as_ref(), ctx.objects.as_ref(), &cache))?)
}

fn snapshot(ctx: &Context, dir: Option<&Path>) -> Result<Snapshot> {
    match dir {
        Some(d) => Ok(Snapshot::open(d)?),
        None => latest_snapshot(ctx),
    }
}

pub fn list(json: bool) -> Result<()> {
    let cat = carelens_analytics::CATALOGUE;
    if json {
        let v: Vec<_> = cat
            .iter()
            .map(|k| {
                serde_json::json!({
                    "name": k.name, "title": k.title, "topic": k.topic, "unit": k.unit,
                    "strata": k.allowed(), "default_by": k.default_by, "definition": k.definition,
                })
            })
            .collect();
        return crate::output::json(&v);
    }
    let mut topic = "";
    for k in cat {
        if k.topic != topic {
            topic = k.topic;
            outln!("{topic}:");
        }
        outln!("  {:<24} {}  [by: {}]", k.name, k.title, k.allowed().join(", "));
    }
    outln!("\ncarelens kpi show NAME: the definition and its SQL; carelens kpi run NAME --by sex,region");
    Ok(())
}

pub fn show(ctx: &Context, args: &KpiShowArgs) -> Result<()> {
    let def = carelens_analytics::find(&args.name)?;
    let as_of = match snapshot(ctx, args.snapshot.as_deref()) {
        Ok(s) => s.manifest.as_of,
        Err(_) => chrono::Utc::now().date_naive(),
    };
    let sql = def.sql(&Query::default(), as_of)?;
    if ctx.json {
        return crate::output::json(&serde_json::json!({
            "name": def.name, "title": def.title, "definition": def.definition, "strata": def.allowed(), "sql": sql,
        }));
    }
    outln!("{} — {}\n", def.name, def.title);
    outln!("{}\n", def.definition);
    outln!("strata (--by): {}", def.allowed().join(", "));
    if def.name == "vaccination_coverage" {
        outln!("\nschedule:");
        for s in carelens_analytics::kpi::SCHEDULE {
            let rule = match s.rule {
                carelens_analytics::kpi::DoseRule::BeforeAge(a) => format!("before age {a}"),
                carelens_analytics::kpi::DoseRule::Within(d) => format!("within {d} days"),
                carelens_analytics::kpi::DoseRule::Ever => "ever".into(),
            };
            outln!("  {:<15} {} × {} {rule}, cohort aged {}–{}", s.key, s.doses, s.atc, s.cohort.0, s.cohort.1);
        }
    }
    outln!("\nSQL (default window, as of {as_of}):\n{sql}");
    Ok(())
}

pub fn run(ctx: &Context, args: &KpiRunArgs) -> Result<()> {
    let def = carelens_analytics::find(&args.name)?;
    let snap = snapshot(ctx, args.snapshot.as_deref())?;
    let q =
        Query { by: args.by.clone(), from: args.from, to: args.to, period: Period::parse(&args.period)?, k: args.k };
    let result = carelens_analytics::run(&snap, def, &q)?;
    if let Some(chart) = &args.chart {
        fs_err::write(chart, carelens_analytics::chart::svg(&result))?;
    }
    let format = if ctx.json { KpiFormat::Json } else { args.format };
    match format {
        KpiFormat::Json => crate::output::json(&output::to_json(&result))?,
        KpiFormat::Csv => match &args.out {
            Some(path) => fs_err::write(path, output::to_csv(&result))?,
            None => print!("{}", output::to_csv(&result)),
        },
        KpiFormat::Parquet => {
            let Some(path) = &args.out else { bail!("--format parquet needs --out FILE") };
            output::write_parquet(&result, path)?;
        }
        KpiFormat::Table => {
            outln!("{} ({} to {}, k = {})", result.title, result.from, result.to, result.k);
            print!("{}", output::to_table(&result));
            if result.suppressed > 0 {
                outln!(
                    "{} of {} cells suppressed: fewer than {} persons (or needed to protect such a cell)",
                    result.suppressed,
                    result.rows.len(),
                    result.k
                );
            }
        }
    }
    Ok(())
}

/// What the demo's analytics step did: the snapshot and a few headline KPIs.
#[derive(Debug, serde::Serialize)]
pub struct DemoAnalytics {
    pub manifest_key: String,
    pub rows: u64,
    pub seconds: f64,
    pub headlines: Vec<serde_json::Value>,
    #[serde(skip)]
    tables: Vec<String>,
}

/// Exports the snapshot and runs three KPIs an analyst would look at first.
pub fn demo_step(ctx: &Context) -> Result<DemoAnalytics> {
    let started = std::time::Instant::now();
    let (key, dir, manifest) = export_snapshot(ctx, None, None)?;
    let seconds = started.elapsed().as_secs_f64();
    let snap = Snapshot::open(&dir)?;
    let mut headlines = Vec::new();
    let mut tables = Vec::new();
    for (name, by) in
        [("prevalence_std", vec![]), ("vaccination_coverage", vec![]), ("waiting_time", vec!["insurance".to_owned()])]
    {
        let def = carelens_analytics::find(name)?;
        let r = carelens_analytics::run(&snap, def, &Query { by, ..Query::default() })?;
        let table = output::to_table(&r);
        tables.push(format!("{} ({} to {}, k = {}):\n{}", r.title, r.from, r.to, r.k, table.trim_end()));
        headlines.push(output::to_json(&r));
    }
    Ok(DemoAnalytics { manifest_key: key.as_str().to_owned(), rows: manifest.rows(), seconds, headlines, tables })
}

pub fn print_demo(a: &DemoAnalytics) {
    outln!("snapshot: {} rows in {:.1} s, manifest {}", crate::output::thousands(a.rows), a.seconds, a.manifest_key);
    for t in &a.tables {
        outln!("\n{t}");
    }
    outln!("all KPIs: `carelens kpi list`; analysts see charts in the web view (sign in as demo.analyst).");
}
