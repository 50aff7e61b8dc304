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

/// Dates on the command line: `YYYY-MM-DD`, with an error that says so.
fn parse_date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|e| format!("expected a date as YYYY-MM-DD, e.g. 2026-10-01 ({e})"))
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
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

    /// Create the data directory's store if there is none (demo, generate, ingest and users
    /// add do so anyway; other commands refuse a data directory without a store)
    #[arg(long, global = true)]
    pub init: bool,

    /// Print the result as one JSON document on stdout (logs and progress stay on stderr)
    #[arg(long, global = true)]
    pub json: bool,

    /// More log output on stderr (-v info, -vv debug); CARELENS_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Only errors on stderr, no progress bars
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Model registry: one folder per model, one `vN` folder per trained version
    /// [default: <data-dir>/models, holding the models bundled with this binary]
    #[arg(long, global = true, env = env::CARELENS_MODELS, value_name = "DIR")]
    pub models: Option<PathBuf>,
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

    /// List patients' Health IDs with age band, sex and region (never names or birth dates),
    /// e.g. to link a patient account: `carelens users add NAME --role patient --patient ID`
    Patients(PatientsArgs),

    /// Copy everything from the current --store/--objects to other backends (e.g. embedded to
    /// MongoDB + S3, or back) and verify both sides have the same checksum
    ///
    /// Safe to rerun after an interruption: every write is an upsert by id.
    Migrate(MigrateArgs),

    /// Bring data in: `carelens ingest images PATH…`, `carelens ingest fhir PATH…` (alias: import)
    #[command(subcommand, visible_alias = "import")]
    Ingest(IngestCommand),

    /// Take data out: `carelens export images --deidentify --out DIR`, `carelens export fhir …`
    #[command(subcommand)]
    Export(ExportCommand),

    /// Train a model and save it as a new version in the registry (--models)
    #[command(subcommand)]
    Train(TrainCommand),

    /// Evaluate a saved model on labelled data: per label AUROC with 95 % CI, sensitivity,
    /// specificity, F1, accuracy at the model's threshold, Brier score, calibration error;
    /// with --plots DIR also ROC curves and reliability diagrams (SVG)
    ///
    /// Examples:
    ///   carelens evaluate --model pneumonia --data ../shared/datasets/pneumoniamnist/pneumoniamnist_trainval.npz
    ///   carelens evaluate --model wdbc@2 --data breast_cancer.csv --plots out/
    Evaluate(EvaluateArgs),

    /// List, inspect, promote and compare saved models
    #[command(subcommand)]
    Models(ModelsCommand),

    /// Predict diagnoses for patients: every image model on the patient's latest matching
    /// study, every history model on their history features, fused per diagnosis by the
    /// `fusion` model into one calibrated probability with risk band, sources and evidence
    /// (occlusion heatmaps, top history features); stored as a new prediction-set version
    /// when the inputs changed
    ///
    /// Rerunning without new data writes nothing. A patient whose data fails is reported and
    /// skipped; the others go on.
    ///
    /// Examples:
    ///   carelens predict
    ///   carelens predict --patients CLH0000000011X,CLH00000000236 --json
    ///   carelens predict --since 2025-01-01 --no-heatmaps
    Predict(PredictArgs),

    /// Show stored prediction sets: `carelens predictions show HEALTH_ID`
    #[command(subcommand)]
    Predictions(PredictionsCommand),

    /// Serve the JSON API and the doctors' web view over HTTP until Ctrl-C
    ///
    /// Doctors sign in (argon2id passwords, 15-minute bearer tokens), see their patients (an
    /// appointment with their practice or a consent grant), each patient's current prediction
    /// set with heatmaps and history evidence, the history timeline, and confirm or reject
    /// suggestions. ML engineers list models and start prediction runs. Every access decision
    /// is audited. The API is described at /openapi.json.
    ///
    /// Example: carelens serve --bind 127.0.0.1:8080 --models models
    Serve(ServeArgs),

    /// Manage sign-in accounts: `carelens users add NAME --role doctor --provider ID`
    #[command(subcommand)]
    Users(UsersCommand),

    /// Population-health KPIs over the latest analytics snapshot (`carelens export analytics`)
    ///
    /// Prevalence (crude and age-standardised to the European Standard Population 2013),
    /// incidence per 1 000 person-years with trend, vaccination coverage against the schedule,
    /// repeat visits, polypharmacy, therapy continuity, no-shows, cancellations, waiting times,
    /// provider utilisation and model monitoring. Cells with fewer than k persons (default 11)
    /// are suppressed, with complementary suppression, and marked in every format.
    ///
    /// Examples:
    ///   carelens kpi list
    ///   carelens kpi run prevalence --by sex,age
    ///   carelens kpi run waiting_time --by specialty,insurance --format csv --out waiting.csv
    ///   carelens kpi run incidence --period month --from 2024-01-01 --chart incidence.svg
    #[command(subcommand)]
    Kpi(KpiCommand),

    /// Provider availability: `carelens availability import --doctolib FILE --jameda FILE`
    #[command(subcommand)]
    Availability(AvailabilityCommand),

    /// Booking confirmations and reminders: deliver what the outbox holds, or see its state
    ///
    /// Bookings put their messages in the outbox (in the store); `carelens serve` delivers them
    /// every 30 seconds when CARELENS_MAIL_URL is set. Messages carry the practice, time and
    /// address with an .ics calendar file; never the patient's name or anything clinical.
    ///
    /// Examples:
    ///   CARELENS_MAIL_URL=smtp://127.0.0.1:2525 carelens notify send
    ///   carelens notify send --mail file:///tmp/outbox     (write .eml files instead)
    ///   carelens notify status
    #[command(subcommand)]
    Notify(NotifyCommand),

    /// The tamper-evident access log: verify its hash chain and signed checkpoints, sign one
    ///
    /// Every read, write, export and denial is an entry chained to the one before by its hash.
    /// `verify` finds an entry that was modified, deleted, inserted or moved, and says which.
    /// Checkpoints, signed with the Ed25519 key in CARELENS_AUDIT_KEY, also catch a log that
    /// was rewritten from some point on or cut short. Keep a checkpoint outside the store
    /// (`checkpoint --out`) and pass it to `verify --anchor` to catch a cut that took the
    /// stored checkpoints with it.
    ///
    /// Examples:
    ///   carelens audit keygen                       (prints a new key for CARELENS_AUDIT_KEY)
    ///   CARELENS_AUDIT_KEY=… carelens audit checkpoint --out /mnt/worm/audit-head.json
    ///   carelens audit verify --anchor /mnt/worm/audit-head.json
    #[command(subcommand)]
    Audit(AuditCommand),

    /// Patients' documents: verify their signatures and stored bytes, rotate the master key
    ///
    /// Documents are signed by their uploader (Ed25519) and stored encrypted (AES-256-GCM
    /// under a per-document data key, wrapped by the master key in CARELENS_MASTER_KEY).
    ///
    /// Examples:
    ///   carelens records keygen                     (prints a new key for CARELENS_MASTER_KEY)
    ///   carelens records verify                     (exit 1 when any document was tampered with)
    ///   CARELENS_MASTER_KEY_PREVIOUS=<old> CARELENS_MASTER_KEY=<new> carelens records rotate-keys
    #[command(subcommand)]
    Records(RecordsCommand),
}

#[derive(Debug, Subcommand)]
pub enum RecordsCommand {
    /// Verify every document (or one patient's): signature by one of the uploader's keys,
    /// stored bytes, digest. Says valid, tampered (and what) or unknown signer per document;
    /// exits 1 when any is not valid
    Verify(RecordsVerifyArgs),
    /// Re-wrap every document's data key and every server-held signing key under
    /// CARELENS_MASTER_KEY, opening the old ones with CARELENS_MASTER_KEY_PREVIOUS. The stored
    /// bytes are not rewritten. Safe to rerun
    RotateKeys,
    /// Print a new random master key for CARELENS_MASTER_KEY
    Keygen,
}

#[derive(Debug, Args)]
pub struct RecordsVerifyArgs {
    /// Only this patient's documents (Health ID)
    #[arg(long, value_name = "HEALTH_ID")]
    pub patient: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the whole log; exits 1 and lists where when anything was tampered with
    Verify(AuditVerifyArgs),
    /// Sign the log's current head with CARELENS_AUDIT_KEY and keep the checkpoint
    Checkpoint(AuditCheckpointArgs),
    /// Print a new random signing key (for CARELENS_AUDIT_KEY) and its public half
    Keygen,
}

#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    /// A checkpoint kept outside the store (a file from `audit checkpoint --out`)
    #[arg(long, value_name = "FILE")]
    pub anchor: Option<PathBuf>,

    /// Trust checkpoints signed by this public key (hex; repeatable). Default: the public half
    /// of CARELENS_AUDIT_KEY when set, else the key each checkpoint names
    #[arg(long = "trust", value_name = "KEY")]
    pub trust: Vec<String>,
}

#[derive(Debug, Args)]
pub struct AuditCheckpointArgs {
    /// Also write the checkpoint (JSON) here, to keep outside the store
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Send every message due now (or at --now); failures are retried later with backoff
    Send(NotifySendArgs),
    /// How many messages are pending, sent, dead or cancelled
    Status,
}

#[derive(Debug, Args)]
pub struct NotifySendArgs {
    /// Where mail goes: smtp://host:port, smtp://host?tls=required (STARTTLS),
    /// smtps://user:password@host, or file:///directory for .eml files
    #[arg(long, env = env::CARELENS_MAIL_URL, value_name = "URL", hide_env_values = true)]
    pub mail: String,

    /// The sender, e.g. "Praxis Beispiel <termine@praxis.example>"
    #[arg(long, env = env::CARELENS_MAIL_FROM, value_name = "ADDRESS", default_value = DEFAULT_MAIL_FROM)]
    pub from: String,

    /// Deliver as if it were this moment (reminders due by then go out), e.g. 2026-12-01T08:00:00Z
    #[arg(long, value_name = "TIME")]
    pub now: Option<chrono::DateTime<chrono::Utc>>,

    /// Keep delivering every SECONDS until Ctrl-C
    #[arg(long, value_name = "SECONDS")]
    pub every: Option<u64>,
}

/// The sender when none is configured.
pub const DEFAULT_MAIL_FROM: &str = "carelens <no-reply@carelens.invalid>";

#[derive(Debug, Subcommand)]
pub enum AvailabilityCommand {
    /// Rebuild the bookable openings: the providers' own schedule rules plus external feeds,
    /// normalised, matched to the directory and merged (the same slot on two platforms becomes
    /// one opening with both as its sources)
    ///
    /// A feed that cannot be read keeps its last good openings; bad entries in a good feed are
    /// listed by their JSON path and skipped. With --every, runs again at that interval until
    /// Ctrl-C.
    ///
    /// Examples:
    ///   carelens availability import
    ///   carelens availability import --doctolib agendas.json --jameda praxen.json
    ///   carelens availability import --doctolib agendas.json --every 15
    Import(AvailabilityImportArgs),

    /// Write sample feeds for the store's own providers (`doctolib.json`, `jameda.json`) to try
    /// the import with: some providers on one platform, some on both, plus the kind of bad
    /// entries real feeds have
    Samples(AvailabilitySamplesArgs),
}

#[derive(Debug, Args)]
pub struct AvailabilitySamplesArgs {
    /// Directory to write `doctolib.json` and `jameda.json` into (created if missing)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// Days of openings, from --now
    #[arg(long, value_name = "DAYS", default_value_t = 14)]
    pub days: u32,

    /// At most this many openings per provider
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub per_provider: usize,

    /// Start of the window [default: now]
    #[arg(long, value_name = "TIME")]
    pub now: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Args)]
pub struct AvailabilityImportArgs {
    /// A Doctolib-style feed (JSON with `agendas`, times with UTC offsets): a file, or an
    /// http(s):// URL fetched each time (30 s timeout, 64 MiB at most)
    #[arg(long, value_name = "FILE|URL")]
    pub doctolib: Option<String>,

    /// A Jameda-style feed (JSON with `praxen`, local times in Europe/Berlin): a file or URL
    #[arg(long, value_name = "FILE|URL")]
    pub jameda: Option<String>,

    /// How far ahead openings are kept, in days
    #[arg(long, value_name = "DAYS", default_value_t = 90)]
    pub horizon_days: u32,

    /// The moment the window starts [default: now], e.g. 2026-10-01T00:00:00Z
    #[arg(long, value_name = "TIME")]
    pub now: Option<chrono::DateTime<chrono::Utc>>,

    /// Refresh every MINUTES until Ctrl-C (files read and URLs fetched again each time)
    #[arg(long, value_name = "MINUTES")]
    pub every: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub enum KpiCommand {
    /// List the KPI catalogue with the strata each KPI allows
    List,
    /// Show a KPI's definition (numerator, denominator, window, strata) and the SQL it runs
    Show(KpiShowArgs),
    /// Run a KPI and print or write the result
    Run(KpiRunArgs),
}

#[derive(Debug, Args)]
pub struct KpiShowArgs {
    /// KPI name, see `carelens kpi list`
    pub name: String,
    /// A snapshot directory instead of the store's latest snapshot
    #[arg(long, value_name = "DIR")]
    pub snapshot: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KpiFormat {
    Table,
    Csv,
    Json,
    Parquet,
}

#[derive(Debug, Args)]
pub struct KpiRunArgs {
    /// KPI name, see `carelens kpi list`
    pub name: String,

    /// Strata, comma-separated: age (or age_band), sex, region, insurance, specialty, period,
    /// birth_year — whichever the KPI allows
    #[arg(long, value_delimiter = ',', value_name = "STRATA")]
    pub by: Vec<String>,

    /// Window start [default: per KPI, e.g. one year before --to]
    #[arg(long, value_parser = parse_date, value_name = "YYYY-MM-DD")]
    pub from: Option<NaiveDate>,

    /// Window end [default: the snapshot's date]
    #[arg(long, value_parser = parse_date, value_name = "YYYY-MM-DD")]
    pub to: Option<NaiveDate>,

    /// Length of `period` strata: month, quarter or year
    #[arg(long, default_value = "quarter", value_name = "PERIOD")]
    pub period: String,

    /// Suppress cells describing fewer than K persons
    #[arg(long, default_value_t = carelens_analytics::kpi::DEFAULT_K, value_name = "K")]
    pub k: u32,

    /// Output format (--json is the same as --format json)
    #[arg(long, value_enum, default_value = "table")]
    pub format: KpiFormat,

    /// Write the CSV or Parquet result to FILE instead of stdout
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Also draw the result as an SVG chart into FILE
    #[arg(long, value_name = "FILE")]
    pub chart: Option<PathBuf>,

    /// A snapshot directory instead of the store's latest snapshot
    #[arg(long, value_name = "DIR")]
    pub snapshot: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address and port to listen on (port 0 picks a free one)
    #[arg(long, env = env::CARELENS_BIND, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080")]
    pub bind: std::net::SocketAddr,

    /// How long a sign-in lasts, in minutes
    #[arg(long, value_name = "MINUTES", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=1440))]
    pub token_ttl_minutes: u64,
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add (or with --reset, update) a user; the password comes from an environment variable
    ///
    /// Example: CARELENS_NEW_PASSWORD=… carelens users add dr.weber --role doctor --provider PRV…
    Add(AddUserArgs),
}

#[derive(Debug, Args)]
pub struct AddUserArgs {
    /// 3–64 characters of a-z, 0-9, '.', '_' and '-'
    pub username: String,

    /// admin, doctor, patient, analyst or ml-engineer
    #[arg(long)]
    pub role: String,

    /// Environment variable holding the password (at least 12 characters; never on the command line)
    #[arg(long, value_name = "VAR", default_value = env::CARELENS_NEW_PASSWORD)]
    pub password_env: String,

    /// The practice a doctor works for (required for doctors)
    #[arg(long, value_name = "PROVIDER_ID")]
    pub provider: Option<String>,

    /// A patient user's own Health ID (required for patients)
    #[arg(long, value_name = "HEALTH_ID")]
    pub patient: Option<String>,

    /// Where booking confirmations and reminders go (patients)
    #[arg(long, value_name = "ADDRESS")]
    pub email: Option<String>,

    /// Update an existing user (new password, role, practice)
    #[arg(long)]
    pub reset: bool,
}

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Only these patients (Health IDs, comma-separated) [default: everyone]
    #[arg(long, value_name = "IDS", value_delimiter = ',')]
    pub patients: Option<Vec<String>>,

    /// Only patients with a history entry on or after this date
    #[arg(long, value_parser = parse_date, value_name = "YYYY-MM-DD")]
    pub since: Option<NaiveDate>,

    /// Date features are computed on [default: the population's generation date, else today]
    #[arg(long, value_parser = parse_date, value_name = "YYYY-MM-DD")]
    pub as_of: Option<NaiveDate>,

    /// Skip the occlusion heatmaps (about 50 extra network passes per positive finding)
    #[arg(long)]
    pub no_heatmaps: bool,

    /// Ignore the fusion model: each diagnosis takes its best source alone
    #[arg(long)]
    pub no_fusion: bool,

    /// Patients per chunk (their images share network batches)
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub chunk: u64,
}

#[derive(Debug, Subcommand)]
pub enum PredictionsCommand {
    /// A patient's latest prediction set (or every version with --all)
    Show(ShowPredictionsArgs),
}

#[derive(Debug, Args)]
pub struct ShowPredictionsArgs {
    /// The patient's Health ID
    pub patient: String,

    /// Every stored version, oldest first
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct TrainFusionArgs {
    /// Use at most this many patients of the store [default: all]
    #[arg(long)]
    pub limit: Option<usize>,

    /// L2 penalty of the stacking regressions
    #[arg(long, default_value_t = carelens_ml::DEFAULT_L2)]
    pub l2: f64,

    /// Folds of the cross-fitted report
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(2..=20))]
    pub folds: u64,

    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// Date features are computed on [default: the population's generation date, else today]
    #[arg(long, value_parser = parse_date, value_name = "YYYY-MM-DD")]
    pub as_of: Option<NaiveDate>,
}

#[derive(Debug, Subcommand)]
pub enum TrainCommand {
    /// Train a multi-label image classifier (residual CNN, burn) with augmentation, class
    /// weighting, warm-up + cosine learning rate, early stopping on validation AUROC,
    /// temperature calibration and a threshold per label chosen on validation
    ///
    /// --data is a MedMNIST-style .npz (train_images/train_labels/val_images/val_labels;
    /// one label, named by --label-name) or a folder of DICOM files with --labels (a CSV
    /// sop_instance_uid,findings as written by `carelens demo`); a folder is filtered by
    /// --modality/--body-part, preprocessed to --size pixels, and split into training and
    /// validation by patient.
    ///
    /// Examples:
    ///   carelens train image --data ../shared/datasets/pneumoniamnist/pneumoniamnist_trainval.npz --model pneumonia
    ///   carelens train image --data ~/.local/share/carelens/incoming/synthetic \
    ///       --labels ~/.local/share/carelens/incoming/synthetic-labels.csv --modality xray --model chest-xray
    Image(TrainImageArgs),

    /// Train a tabular classifier on a CSV with a binary --target column: logistic
    /// regression, Gaussian naive Bayes and random forest, each over a small grid, chosen by
    /// stratified k-fold AUROC; Platt (or isotonic) calibration and the threshold are fitted
    /// on out-of-fold scores
    ///
    /// Columns are typed from their content: numeric columns are median-imputed (with a
    /// missing-value indicator) and standardised, others one-hot encoded; `?`, `NA`, empty
    /// cells are missing, and every column's problems are reported.
    ///
    /// Example:
    ///   carelens train tabular --data breast_cancer.csv --target target --positive 0 --model wdbc
    Tabular(TrainTabularArgs),

    /// Fit the `fusion` model: run every image and history model in the registry on the
    /// store's patients and fit, per diagnosis, a stacking regression over the sources'
    /// calibrated log-odds and presence, against the store's ground truth
    ///
    /// Fit it on a population the source models were NOT trained on (the demo population,
    /// seed 42, for the committed models trained on seed 7), or the stack trusts their
    /// in-sample confidence. Reports cross-fitted AUROCs of the fusion and of each source.
    ///
    /// Example:
    ///   carelens train fusion --limit 5000
    Fusion(TrainFusionArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageModality {
    Xray,
    Ct,
    Mri,
}

#[derive(Debug, Args)]
pub struct TrainImageArgs {
    /// MedMNIST-style .npz, or a folder of DICOM files (with --labels)
    #[arg(long, value_name = "PATH")]
    pub data: PathBuf,

    /// Per-image labels for a DICOM folder: CSV sop_instance_uid,findings
    #[arg(long, value_name = "CSV")]
    pub labels: Option<PathBuf>,

    /// Registry name of the model
    #[arg(long, value_name = "NAME")]
    pub model: String,

    /// Name of the single label of an .npz
    #[arg(long, default_value = "pneumonia")]
    pub label_name: String,

    /// Keep only images of this modality (DICOM folders)
    #[arg(long, value_enum)]
    pub modality: Option<ImageModality>,

    /// Keep only images of this body part, e.g. chest, head, abdomen (DICOM folders)
    #[arg(long)]
    pub body_part: Option<String>,

    /// Network input size in pixels (DICOM folders; .npz images keep their size)
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(8..=512))]
    pub size: u32,

    /// Share of patients held out for validation (DICOM folders)
    #[arg(long, default_value_t = 0.2)]
    pub val_fraction: f64,

    #[arg(long, default_value_t = 20)]
    pub epochs: usize,

    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,

    /// Peak learning rate (AdamW, one warm-up epoch, cosine decay)
    #[arg(long, default_value_t = 3e-3)]
    pub learning_rate: f64,

    /// Stop after this many epochs without a better validation AUROC
    #[arg(long, default_value_t = 5)]
    pub patience: usize,

    /// Channels per network stage, comma-separated
    #[arg(long, value_delimiter = ',', default_value = "16,32,64")]
    pub widths: Vec<usize>,

    /// Seed for initialisation, shuffling and augmentation: the same seed gives the same model
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// Train without augmentation
    #[arg(long)]
    pub no_augment: bool,

    /// Use at most this many training images (evenly spaced), for quick runs
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,

    /// Save a checkpoint after every epoch in this folder and resume from it when it holds one
    #[arg(long, value_name = "DIR")]
    pub checkpoint: Option<PathBuf>,

    #[command(flatten)]
    pub threshold: ThresholdArgs,
}

#[derive(Debug, Args)]
pub struct ThresholdArgs {
    /// Choose each label's threshold for this sensitivity (e.g. 0.95 for screening) instead
    /// of maximising sensitivity + specificity (Youden)
    #[arg(long, value_name = "SENS")]
    pub target_sensitivity: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TabularKindArg {
    All,
    Logistic,
    NaiveBayes,
    Forest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CalibrationArg {
    Platt,
    Isotonic,
    None,
}

#[derive(Debug, Args)]
pub struct TrainTabularArgs {
    /// CSV file with a header row, or a Parquet file (.parquet)
    #[arg(long, value_name = "CSV|PARQUET")]
    pub data: PathBuf,

    /// The binary target column
    #[arg(long, value_name = "COLUMN")]
    pub target: String,

    /// The target value that means positive [default: 1, true, yes or the larger class's
    /// other value]
    #[arg(long, value_name = "VALUE")]
    pub positive: Option<String>,

    /// Registry name of the model
    #[arg(long, value_name = "NAME")]
    pub model: String,

    /// Model family to search; `all` searches every family and keeps the best
    #[arg(long, value_enum, default_value = "all")]
    pub kind: TabularKindArg,

    /// Cross-validation folds
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(2..=50))]
    pub folds: u32,

    #[arg(long, value_enum, default_value = "platt")]
    pub calibration: CalibrationArg,

    /// Seed for folds and forests: the same seed gives the same model
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    #[command(flatten)]
    pub threshold: ThresholdArgs,
}

#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// NAME, NAME@N: the promoted version, else the latest, unless @N is given
    #[arg(long, value_name = "NAME[@N]")]
    pub model: String,

    /// Labelled data of the model's kind: CSV (tabular), .npz or DICOM folder (image)
    #[arg(long, value_name = "PATH")]
    pub data: PathBuf,

    /// Per-image labels for a DICOM folder
    #[arg(long, value_name = "CSV")]
    pub labels: Option<PathBuf>,

    /// Which split of an .npz to evaluate on
    #[arg(long, default_value = "val", value_parser = ["train", "val"])]
    pub split: String,

    /// Write ROC curves and reliability diagrams (SVG) here
    #[arg(long, value_name = "DIR")]
    pub plots: Option<PathBuf>,

    /// Seed for the bootstrap intervals
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Every model with its versions, the promoted one marked, and validation AUROC
    List,
    /// One version's card: task, data, metrics with intervals, limitations
    Show {
        /// NAME or NAME@N
        model: String,
    },
    /// Make a version the default one served (or --best: the best validation AUROC)
    Promote {
        /// NAME@N, or NAME with --best
        model: String,
        #[arg(long)]
        best: bool,
    },
    /// Compare two versions: configuration and metrics side by side
    Diff {
        /// NAME@N
        a: String,
        /// NAME@N (another model's version works too)
        b: String,
    },
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

    /// Export one feature row per patient for tabular models (Parquet or CSV, by extension)
    ///
    /// Built with polars from each history up to --as-of: age (completed years), sex, visits
    /// in the last year, current medications, other active diagnoses, and per common lab test
    /// (LOINC) the latest and mean value; the target column diagnosis_<CATEGORY> is yes/no for
    /// a recorded diagnosis in that ICD-10 category. No names, IDs or dates are written.
    ///
    /// Example: carelens export features --diagnosis E11 --out diabetes.parquet &&
    ///   carelens train tabular --data diabetes.parquet --target diagnosis_E11 --model diabetes
    Features(ExportFeaturesArgs),

    /// Export doctors' verdicts on one diagnosis as training labels for a history model
    ///
    /// One anonymous feature row per patient with a verdict (the same columns as `export
    /// features`), whose target diagnosis_<CATEGORY> is "yes" where the latest verdict on a
    /// diagnosis of that category confirmed it and "no" where it rejected it. Comments, names,
    /// IDs and dates are not written. Retrain with it directly:
    ///
    /// carelens export feedback --diagnosis J18 --out j18-feedback.csv &&
    ///   carelens train tabular --data j18-feedback.csv --target diagnosis_J18 --model history-j18
    Feedback(ExportFeedbackArgs),

    /// Export the analytics snapshot KPIs run on: pseudonymised Parquet into the object store
    ///
    /// Histories, appointments (with offered capacity), prediction sets and doctors' verdicts
    /// as Parquet tables partitioned by year and month (Hive layout, zstd) with a manifest
    /// (rows, sizes, SHA-256 per file). No names, Health IDs, birth dates or addresses: persons
    /// are keyed by an HMAC pseudonym (CARELENS_PSEUDONYM_KEY for pseudonyms that link across
    /// snapshots, else a random key per snapshot), age is in completed years, residence is the
    /// region. The files go to the object store (--objects, local or S3), the manifest's key is
    /// recorded in the store, and a copy stays in the data directory (or --out) for polars,
    /// notebooks, Spark or Trino.
    Analytics(ExportAnalyticsArgs),

    /// Export patients' records as FHIR R4 bundles (JSON), one `collection` bundle each
    ///
    /// Patient, Condition, Observation, Immunization, AllergyIntolerance, MedicationStatement,
    /// Procedure, ImagingStudy, plus Appointment, Consent, DocumentReference, AuditEvent and the
    /// latest prediction set as RiskAssessment (probability, risk band, the models as basis).
    /// Identified data: each export is written to the audit log. An import of the bundle gives
    /// back the same history entries.
    ///
    /// Examples:
    ///   carelens export fhir --patient CLH… --out record.json
    ///   carelens export fhir --all --out bundles/
    Fhir(ExportFhirArgs),
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("who").required(true).args(["patient", "all"])))]
pub struct ExportFhirArgs {
    /// The patient's Health ID (repeatable)
    #[arg(long, value_name = "HEALTH_ID")]
    pub patient: Vec<String>,

    /// Every patient in the store
    #[arg(long)]
    pub all: bool,

    /// Output: a file for one patient (`-` for stdout), else a directory (one <HEALTH_ID>.json each)
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct ExportAnalyticsArgs {
    /// Also keep the snapshot in this (new or empty) directory, e.g. for notebooks
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Reference date: ages and default KPI windows end here [default: the population's
    /// generation date, else today]
    #[arg(long, value_parser = parse_date, value_name = "YYYY-MM-DD")]
    pub as_of: Option<NaiveDate>,
}

#[derive(Debug, Args)]
pub struct ExportFeedbackArgs {
    /// ICD-10 category of the diagnosis the verdicts are about, e.g. J18
    #[arg(long, value_name = "CATEGORY")]
    pub diagnosis: String,

    /// Output file: .parquet for Parquet, anything else for CSV
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,

    /// History up to this date counts [default: the population's generation date, else today]
    #[arg(long, value_parser = parse_date, value_name = "YYYY-MM-DD")]
    pub as_of: Option<NaiveDate>,
}

#[derive(Debug, Args)]
pub struct ExportFeaturesArgs {
    /// ICD-10 category of the target diagnosis, e.g. E11 (type 2 diabetes), I10, J45
    #[arg(long, value_name = "CATEGORY")]
    pub diagnosis: String,

    /// Output file: .parquet for Parquet, anything else for CSV
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,

    /// History up to this date counts [default: the population's generation date, else today]
    #[arg(long, value_parser = parse_date, value_name = "YYYY-MM-DD")]
    pub as_of: Option<NaiveDate>,
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

    /// Import FHIR R4 bundles (JSON): patients and their conditions, observations,
    /// immunizations, allergies, medications, procedures and imaging studies
    ///
    /// Also reachable as `carelens import fhir`. Codes are mapped to carelens's own (SNOMED CT
    /// conditions to ICD-10, RxNorm drugs to ATC; LOINC and CVX kept) by the documented tables
    /// in crates/carelens-records/maps, and the source coding is stored beside them, so an
    /// export gives it back. Consent categories follow the mapped code (F-coded diagnoses and
    /// psychiatric drugs are mental health). Resources carelens does not keep (Encounter,
    /// Claim, …) are counted, not imported; a broken resource is reported by file, bundle
    /// entry and field, and the rest of the bundle goes on. Re-importing changes nothing.
    ///
    /// Example: carelens import fhir ../shared/synthea/fhir/
    Fhir(IngestFhirArgs),
}

#[derive(Debug, Args)]
pub struct IngestFhirArgs {
    /// Bundle files (.json) or folders (walked recursively for .json files)
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Also write the full report (every file, count and problem) as JSON here
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    /// Exit with an error when any file failed or any resource had a problem
    #[arg(long)]
    pub strict: bool,
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
    #[arg(long, value_parser = parse_date, value_name = "YYYY-MM-DD", default_value_t = carelens_synth::Config::default_as_of())]
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

    /// Date the demo population is generated as of (YYYY-MM-DD; only used when the data
    /// directory has none yet) [default: today]. The same date and --patients always give the
    /// same population; pin it in scripts and CI
    #[arg(long, value_parser = parse_date, value_name = "YYYY-MM-DD", env = env::CARELENS_DEMO_AS_OF)]
    pub as_of: Option<NaiveDate>,

    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Args)]
pub struct PatientsArgs {
    /// How many (in Health ID order)
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub limit: u32,

    /// Start after this Health ID (the last one of the previous page)
    #[arg(long, value_name = "HEALTH_ID")]
    pub after: Option<String>,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Date ages are computed on [default: the population's generation date, else today]
    #[arg(long, value_parser = parse_date, value_name = "YYYY-MM-DD")]
    pub as_of: Option<NaiveDate>,
}
