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
    /// generate a demo population, render and ingest its imaging studies, and report what is there
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

    /// Bring data in: `carelens ingest images PATH…`
    #[command(subcommand)]
    Ingest(IngestCommand),

    /// Take data out: `carelens export images --deidentify --out DIR`
    #[command(subcommand)]
    Export(ExportCommand),
}

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Export every stored image de-identified, for training sets and research
    ///
    /// DICOM PS3.15 Basic Application Level Confidentiality Profile with modified dates:
    /// names and IDs replaced by a pseudonym, dates shifted consistently per patient, UIDs
    /// remapped consistently, identifying text, private elements and overlays removed;
    /// images with burned-in annotation refused. Pseudonyms, UIDs and shifts derive from
    /// the secret in CARELENS_DEID_SECRET (at least 16 characters), so the same secret gives
    /// consistent exports. Writes OUT/<pseudonym>/<study>/<instance>.dcm and OUT/labels.csv.
    Images(ExportImagesArgs),
}

#[derive(Debug, Args)]
pub struct ExportImagesArgs {
    /// Apply the de-identification profile (required: identified exports go through the
    /// consent checks of the records module)
    #[arg(long)]
    pub deidentify: bool,

    /// Output folder
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// Export images whose pixels carry burned-in text too
    #[arg(long)]
    pub allow_burned_in: bool,
}

#[derive(Debug, Subcommand)]
pub enum IngestCommand {
    /// Ingest DICOM (any common transfer syntax), PNG and JPEG images from files, folders
    /// (recursively) and DICOMDIRs
    ///
    /// Each image is decoded and checked, tied to a patient (DICOM PatientID + Issuer of
    /// Patient ID through --patient-map, or a PatientID that is a carelens Health ID; PNG/JPEG
    /// through --manifest), stored content-addressed in the object store, and recorded as an
    /// instance of its imaging study. Re-ingesting the same file is a no-op. Bad files are
    /// reported and skipped; the rest of the batch goes on. Ends with a report: ingested,
    /// duplicate, skipped and failed files with the reason for each (--json for all of it).
    Images(IngestImagesArgs),
}

#[derive(Debug, Args)]
pub struct IngestImagesArgs {
    /// Files, folders (walked recursively) or DICOMDIR files
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// CSV with columns issuer,patient_id,health_id mapping DICOM patients to Health IDs
    #[arg(long, value_name = "CSV")]
    pub patient_map: Option<PathBuf>,

    /// CSV for PNG/JPEG files: file,health_id,modality,body_part,study_date[,study_uid]
    /// (file relative to the manifest's folder; study_date YYYY-MM-DD)
    #[arg(long, value_name = "CSV")]
    pub manifest: Option<PathBuf>,

    /// CSV with columns sop_instance_uid,findings: per-image labels (findings separated by
    /// `;`, or `normal`)
    #[arg(long, value_name = "CSV")]
    pub labels: Option<PathBuf>,

    /// Decoding threads [default: number of CPUs]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// Also write the full per-file report as JSON to this file
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    /// Exit with status 1 when any file failed (for scripts)
    #[arg(long)]
    pub strict: bool,
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

    /// Skip rendering and ingesting synthetic imaging studies
    #[arg(long)]
    pub no_images: bool,

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
