//! `carelens demo`: the main job. Each module adds its step here.

use anyhow::Result;
use carelens_synth::Config;
use serde::Serialize;

use super::generate::{self, GenerateReport};
use super::images::{self, SyntheticImagesReport};
use super::stats::{self, StatsReport};
use crate::cli::DemoArgs;
use crate::context::Context;
use crate::output;

/// Seed of the demo population.
pub const DEMO_SEED: u64 = 42;

#[derive(Debug, Serialize)]
struct DemoReport {
    data_dir: String,
    population: GenerateReport,
    images: Option<SyntheticImagesReport>,
    stats: StatsReport,
    /// What happened to the HTTP server step.
    serve: &'static str,
}

pub fn run(ctx: &Context, args: &DemoArgs) -> Result<()> {
    if !ctx.json {
        outln!("carelens demo: data directory {}", ctx.data_dir.display());
    }
    // A population: reuse whatever complete one is there, else generate the demo population.
    let existing = generate::population(ctx)?.filter(|p| p.complete);
    let config = match &existing {
        Some(p) => Config { seed: p.seed, patients: p.patients, as_of: p.as_of, threads: 2 },
        None => Config {
            seed: DEMO_SEED,
            patients: args.patients,
            as_of: Config::default_as_of(),
            threads: std::thread::available_parallelism().map_or(2, usize::from),
        },
    };
    let population = generate::generate(ctx, &config)?;
    let images = if args.no_images { None } else { Some(images::synthesize_and_ingest(ctx, config.seed)?) };
    let stats = stats::collect(ctx, None)?;
    let serve = if args.no_serve {
        "skipped (--no-serve)"
    } else {
        // The HTTP server and doctors' web view arrive with the predictions module.
        "not available yet: carelens has no HTTP server in this version"
    };
    if ctx.json {
        return output::json(&DemoReport {
            data_dir: ctx.data_dir.display().to_string(),
            population,
            images,
            stats,
            serve,
        });
    }
    outln!("\n[1/3] population");
    generate::print_human(&population);
    outln!("\n[2/3] synthetic imaging studies");
    match &images {
        Some(r) => images::print_human(r),
        None => outln!("skipped (--no-images)"),
    }
    outln!("\n[3/3] what the store holds");
    stats::print_human(&stats);
    outln!("\nserver: {serve}");
    outln!(
        "\nNext: `carelens stats` any time; `carelens generate --patients 100000 --seed 7 --data-dir DIR` for a bigger population."
    );
    Ok(())
}
