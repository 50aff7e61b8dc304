//! `carelens generate`: a synthetic population into the store.

use std::time::Instant;

use anyhow::{Result, bail};
use carelens_store::WriteBatch;
use carelens_synth::{Chunk, Config, Summary};
use serde::{Deserialize, Serialize};

use crate::cli::GenerateArgs;
use crate::context::Context;
use crate::output::{self, thousands};

/// Store meta key recording which population the store holds.
pub const POPULATION_META: &str = "population";

/// What the store knows about the population it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PopulationMeta {
    pub seed: u64,
    pub patients: u64,
    pub as_of: chrono::NaiveDate,
    /// False while generation is running (or after it was interrupted).
    pub complete: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
}

#[derive(Debug, Serialize)]
pub struct GenerateReport {
    pub data_dir: String,
    /// True when the store already held exactly this population and nothing was written.
    pub reused: bool,
    /// True for --dry-run: generated and hashed, nothing written.
    pub dry_run: bool,
    pub summary: Summary,
    pub seconds: f64,
    pub patients_per_second: f64,
}

pub fn population(ctx: &Context) -> Result<Option<PopulationMeta>> {
    let raw = ctx.runtime.block_on(ctx.store.get_meta(POPULATION_META))?;
    Ok(match raw {
        Some(s) => Some(serde_json::from_str(&s)?),
        None => None,
    })
}

fn batch(c: Chunk) -> WriteBatch {
    WriteBatch {
        patients: c.patients,
        history: c.history,
        ground_truth: c.ground_truth,
        providers: c.providers,
        reviews: c.reviews,
        schedule_rules: c.schedule_rules,
        closures: vec![],
        appointments: c.appointments,
    }
}

/// Generates `config` into the store unless it already holds exactly that population.
pub fn generate(ctx: &Context, config: &Config) -> Result<GenerateReport> {
    let started = Instant::now();
    let data_dir = ctx.data_dir.display().to_string();
    if let Some(existing) = population(ctx)? {
        let same =
            existing.seed == config.seed && existing.patients == config.patients && existing.as_of == config.as_of;
        match (&existing.summary, same, existing.complete) {
            (Some(summary), true, true) => {
                return Ok(GenerateReport {
                    data_dir,
                    reused: true,
                    dry_run: false,
                    summary: summary.clone(),
                    seconds: started.elapsed().as_secs_f64(),
                    patients_per_second: 0.0,
                });
            }
            // Same population, interrupted before: regenerating upserts the same records.
            (_, true, false) => tracing::info!("resuming an interrupted generation"),
            _ => bail!(
                "{} already holds another population (seed {}, {} patients, as of {}); \
                 use another --data-dir for a different population",
                ctx.data_dir.display(),
                existing.seed,
                existing.patients,
                existing.as_of
            ),
        }
    }
    let mut meta = PopulationMeta {
        seed: config.seed,
        patients: config.patients,
        as_of: config.as_of,
        complete: false,
        summary: None,
    };
    ctx.runtime.block_on(ctx.store.set_meta(POPULATION_META, &serde_json::to_string(&meta)?))?;

    let bar = ctx.progress(config.patients, "patients");
    let summary = carelens_synth::generate(config, |chunk: Chunk| {
        let n = chunk.patients.len() as u64;
        ctx.runtime.block_on(ctx.store.apply(batch(chunk)))?;
        bar.inc(n);
        Ok::<_, carelens_store::StoreError>(())
    })?;
    bar.finish_and_clear();

    meta.complete = true;
    meta.summary = Some(summary.clone());
    ctx.runtime.block_on(ctx.store.set_meta(POPULATION_META, &serde_json::to_string(&meta)?))?;
    let seconds = started.elapsed().as_secs_f64();
    tracing::info!(patients = config.patients, seconds, "generated population");
    Ok(GenerateReport {
        data_dir,
        reused: false,
        dry_run: false,
        patients_per_second: config.patients as f64 / seconds,
        summary,
        seconds,
    })
}

pub fn print_human(r: &GenerateReport) {
    let s = &r.summary;
    if r.reused {
        outln!("Population already in {} (nothing written):", r.data_dir);
    } else if r.dry_run {
        outln!(
            "Generated {} patients in {:.1} s ({} patients/s); dry run, nothing written:",
            thousands(s.patients),
            r.seconds,
            thousands(r.patients_per_second as u64)
        );
    } else {
        outln!(
            "Generated {} patients in {:.1} s ({} patients/s) into {}:",
            thousands(s.patients),
            r.seconds,
            thousands(r.patients_per_second as u64),
            r.data_dir
        );
    }
    outln!("  seed {}, as of {}", s.seed, s.as_of);
    outln!("  {:>12} providers with {} schedule rules", thousands(s.providers), thousands(s.schedule_rules));
    outln!("  {:>12} history entries", thousands(s.history_entries));
    outln!("  {:>12} ground-truth conditions", thousands(s.ground_truth));
    outln!("  {:>12} appointments, {} reviews", thousands(s.appointments), thousands(s.reviews));
    outln!("  summary hash {}", s.hash);
}

/// Generates without writing: the summary (and hash) of `config`.
fn dry_run(ctx: &Context, config: &Config) -> Result<GenerateReport> {
    let started = Instant::now();
    let bar = ctx.progress(config.patients, "patients");
    let summary = carelens_synth::generate(config, |chunk: Chunk| {
        bar.inc(chunk.patients.len() as u64);
        Ok::<_, std::convert::Infallible>(())
    })?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    Ok(GenerateReport {
        data_dir: ctx.data_dir.display().to_string(),
        reused: false,
        dry_run: true,
        patients_per_second: config.patients as f64 / seconds,
        summary,
        seconds,
    })
}

pub fn run(ctx: &Context, args: &GenerateArgs) -> Result<()> {
    let today = chrono::Utc::now().date_naive();
    if args.as_of > today {
        bail!(
            "--as-of {} is in the future; histories end on the generation date, so use {today} or earlier",
            args.as_of
        );
    }
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from));
    let config = Config { seed: args.seed, patients: args.patients, as_of: args.as_of, threads };
    let report = if args.dry_run { dry_run(ctx, &config)? } else { generate(ctx, &config)? };
    if ctx.json {
        output::json(&report)
    } else {
        print_human(&report);
        Ok(())
    }
}
