//! Command-line interface definition (clap).

use std::path::PathBuf;

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};

use crate::env;

/// carelens: machine-learning diagnosis and population-health analytics, with booking and
/// medical records beside it.
///
/// Data lives in one data directory (the embedded SQLite store and local object files),
/// so nothing needs to be installed. Start with `carelens demo`.
#[derive(Debug, Parser)]
#[command(name = "carelens", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Data directory for the embedded store and local objects
    /// [default: $XDG_DATA_HOME/carelens or ~/.local/share/carelens]
    #[arg(long, global = true, env = env::CARELENS_DATA_DIR, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Document store: sqlite:///path/carelens.sqlite or mongodb://[user:pw@]host[:port]/db
    /// [default: sqlite://<data-dir>/carelens.sqlite]
    #[arg(long, global = true, env = env::CARELENS_STORE, value_name = "URL")]
    pub store: Option<String>,

    /// Object store for originals and derived files: file:///path or
    /// s3://bucket[/prefix]?endpoint=URL&region=R (credentials from AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY) [default: file://<data-dir>/objects]
    #[arg(long, global = true, env = env::CARELENS_OBJECTS, value_name = "URL")]
    pub objects: Option<String>,

    /// Print the result as one JSON document on stdout (logs and progress stay on stderr)
    #[arg(long, global = true)]
    pub json: bool,

    /// More log output on stderr (-v info, -vv debug); CARELENS_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Only errors on stderr, no progress bars
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole product on the embedded default: create (or reuse) a data directory,
    /// generate a demo population, and report what is there
    ///
    /// Every module adds its step here, so `carelens demo` always shows the whole product.
    Demo(DemoArgs),

    /// Generate a deterministic synthetic population into the store
    ///
    /// Patients (age/sex pyramid, cities, statutory/private insurance), providers of common
    /// specialties with schedules and reviews, longitudinal histories from disease modules
    /// (diabetes, hypertension, pneumonia, asthma/COPD, depression/anxiety, coronary heart
    /// disease, kidney disease, pregnancy, fractures), vaccinations, allergies, appointments
    /// with no-shows, and each patient's ground-truth conditions. The same --seed, --patients
    /// and --as-of always give the same population and the same summary hash.
    Generate(GenerateArgs),

    /// Show what the store holds: counts per condition, age band, region, insurance,
    /// history category and appointment status
    Stats(StatsArgs),

    /// Copy everything from the current --store/--objects to other backends (e.g. embedded to
    /// MongoDB + S3, or back) and verify both sides have the same checksum
    ///
    /// Safe to rerun after an interruption: every write is an upsert by id.
    Migrate(MigrateArgs),
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Target document store URL (sqlite:///… or mongodb://…)
    #[arg(long, value_name = "URL")]
    pub to_store: String,

    /// Target object store URL (file:///… or s3://…)
    #[arg(long, value_name = "URL")]
    pub to_objects: String,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Number of patients
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub patients: u64,

    /// Random seed; the same seed gives the same population
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// Generation date (YYYY-MM-DD): histories end here, upcoming appointments follow it.
    /// Fixed by default so that a seed means the same population on any day
    #[arg(long, value_name = "DATE", default_value_t = carelens_synth::Config::default_as_of())]
    pub as_of: NaiveDate,

    /// Worker threads [default: number of CPUs]; the output does not depend on it
    #[arg(long)]
    pub threads: Option<usize>,

    /// Generate and report the summary hash without writing anything
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Patients in the demo population (only used when the data directory has none yet)
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub patients: u64,

    /// Do everything except start the HTTP server (for scripts and CI)
    #[arg(long)]
    pub no_serve: bool,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Date ages are computed on [default: the population's generation date, else today]
    #[arg(long, value_name = "DATE")]
    pub as_of: Option<NaiveDate>,
}
