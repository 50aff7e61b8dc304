//! `carelens demo`: the main job. Each module adds its step here.

use anyhow::Result;
use carelens_ml::{ModelBody, Registry};
use carelens_synth::Config;
use serde::Serialize;

use super::evaluate::{self, Evaluation};
use super::generate::{self, GenerateReport};
use super::images::{self, SyntheticImagesReport};
use super::stats::{self, StatsReport};
use crate::cli::{DemoArgs, EvaluateArgs};
use crate::context::{Context, Light};
use crate::output;

/// Seed of the demo population.
pub const DEMO_SEED: u64 = 42;

#[derive(Debug, Serialize)]
struct DemoReport {
    data_dir: String,
    /// The demo's key file (master and audit keys; never printed).
    keys: String,
    population: GenerateReport,
    /// Appointments that ended since the population was made, recorded as attended now.
    settled_appointments: usize,
    images: Option<SyntheticImagesReport>,
    stats: StatsReport,
    models: ModelsStep,
    /// Every patient through the models and the fusion, with the evaluation against the
    /// ground truth; `None` when the registry has nothing to predict with.
    predictions: Option<super::predict::PredictReport>,
    /// A patient whose set has a high-risk diagnosis that is not yet recorded, for a look.
    example: Option<carelens_domain::PredictionSet>,
    /// The analytics snapshot and headline KPIs.
    analytics: super::analytics::DemoAnalytics,
    /// Availability imported from the sample feeds, and a few bookings.
    booking: super::availability::DemoBooking,
    /// Sign-in accounts for the web view (passwords new on every run).
    logins: Vec<super::serve::DemoLogin>,
    /// The audit entry the demo's signed checkpoint covers (none while the log is empty).
    audit_checkpoint: Option<u64>,
    /// What happened to the HTTP server step.
    serve: &'static str,
}

/// The models step: every image model in the registry that was trained on DICOM studies,
/// run on the demo's own synthetic studies at its saved calibration and thresholds.
#[derive(Debug, Serialize, Default)]
struct ModelsStep {
    registry: String,
    evaluations: Vec<Evaluation>,
    /// Models not run here, and why.
    not_run: Vec<(String, String)>,
}

fn models_step(light: &Light, images: Option<&SyntheticImagesReport>, labels: &std::path::Path) -> Result<ModelsStep> {
    let registry = Registry::new(&light.models);
    let mut step = ModelsStep { registry: light.models.display().to_string(), ..ModelsStep::default() };
    let Some(images) = images else {
        return Ok(step);
    };
    for name in registry.names()? {
        let (name, version) = registry.resolve(&name)?;
        let m = registry.load(&name, version)?;
        match &m.body {
            ModelBody::Image { preprocess: Some(_), .. } => {}
            ModelBody::Image { .. } => {
                step.not_run.push((name, "trained on an .npz archive, not on DICOM studies".to_owned()));
                continue;
            }
            ModelBody::Tabular { .. } => {
                step.not_run.push((name, "a tabular model (evaluate it with `carelens evaluate`)".to_owned()));
                continue;
            }
            ModelBody::Fusion { .. } => {
                step.not_run.push((name, "the fusion model (it runs in the prediction step)".to_owned()));
                continue;
            }
        }
        let args = EvaluateArgs {
            model: format!("{name}@{version}"),
            data: images.folder.clone(),
            labels: Some(labels.to_owned()),
            split: "val".to_owned(),
            plots: None,
            seed: DEMO_SEED,
        };
        match evaluate::evaluate(light, &args) {
            Ok(e) => step.evaluations.push(e),
            // A model whose modality the demo did not render, say: reported, not fatal.
            Err(e) => step.not_run.push((name, format!("{e:#}"))),
        }
    }
    Ok(step)
}

/// The first patient (in id order) with a high-risk, not yet recorded diagnosis that has a
/// heatmap, else one with any evidence, else the first with a set; always one with a
/// practice (a non-cancelled appointment), whose doctor the demo's doctor then is.
fn example_set(ctx: &Context) -> Result<Option<carelens_domain::PredictionSet>> {
    use carelens_store::PageRequest;
    let mut first = None;
    let mut page = Some(PageRequest::first(500));
    while let Some(req) = page {
        let got = ctx.runtime.block_on(ctx.store.list_patients(req))?;
        for p in &got.items {
            let Some(set) = ctx.runtime.block_on(ctx.store.latest_prediction_set(&p.id))? else { continue };
            let appointments = ctx.runtime.block_on(ctx.store.appointments_for_patient(&p.id))?;
            if appointments.iter().all(|a| a.status == carelens_domain::AppointmentStatus::Cancelled) {
                continue;
            }
            let high_new = |d: &carelens_domain::DiagnosisPrediction| {
                !d.known && d.risk_band == carelens_domain::RiskBand::High && !d.evidence.is_empty()
            };
            let heatmap = set
                .predictions
                .iter()
                .any(|d| high_new(d) && d.evidence.iter().any(|e| e.kind == carelens_domain::EvidenceKind::Heatmap));
            if heatmap {
                return Ok(Some(set));
            }
            if set.predictions.iter().any(high_new) {
                first = Some(first.filter(|(striking, _)| *striking).unwrap_or((true, set)));
            } else if first.is_none() {
                first = Some((false, set));
            }
        }
        page = got.next;
    }
    Ok(first.map(|(_, set)| set))
}

pub fn run(ctx: &Context, light: &Light, args: &DemoArgs) -> Result<()> {
    let human = !ctx.json;
    if human {
        outln!("carelens demo: data directory {}", ctx.data_dir.display());
    }
    // The demo data directory's own keys (documents, audit checkpoints), unless the
    // environment brings its own.
    let keys = super::demo_keys::load_or_create(&ctx.data_dir)?;
    if human {
        outln!(
            "demo keys: {} {} (mode 0600; for this demo data directory only: production supplies \
             CARELENS_MASTER_KEY and CARELENS_AUDIT_KEY from the environment)",
            if keys.created { "made" } else { "read from" },
            keys.path.display()
        );
    }
    // A population: reuse whatever complete one is there, else generate one dated today (or
    // --as-of).
    let today = chrono::Utc::now().date_naive();
    let as_of = args.as_of.unwrap_or(today);
    let existing = generate::population(ctx)?.filter(|p| p.complete);
    let config = match &existing {
        Some(p) => Config { seed: p.seed, patients: p.patients, as_of: p.as_of, threads: 2 },
        None => Config {
            seed: DEMO_SEED,
            patients: args.patients,
            as_of,
            threads: std::thread::available_parallelism().map_or(2, usize::from),
        },
    };
    if human {
        outln!("\n[1/8] population");
    }
    let population = generate::generate(ctx, &config)?;
    let settled = settle_past_appointments(ctx, config.as_of)?;
    if human {
        generate::print_human(&population);
        if config.as_of != as_of {
            outln!(
                "note: this data directory's population is dated {} (not {as_of}); {settled} appointment(s) since then \
                 are settled as attended. For a population dated {as_of}, use another --data-dir or remove this one.",
                config.as_of
            );
        }
    }
    if human {
        outln!("\n[2/8] synthetic imaging studies");
    }
    let images = if args.no_images { None } else { Some(images::synthesize_and_ingest(ctx, config.seed)?) };
    if human {
        match &images {
            Some(r) => images::print_human(r),
            None => outln!("skipped (--no-images)"),
        }
    }
    let stats = stats::collect(ctx, None)?;
    if human {
        outln!("\n[3/8] what the store holds");
        stats::print_human(&stats);
    }
    if human {
        outln!(
            "\n[4/8] diagnosis models ({}) on this population's studies, which they were not trained on",
            light.models.display()
        );
    }
    let models = models_step(light, images.as_ref(), &ctx.data_dir.join("incoming/synthetic-labels.csv"))?;
    if human {
        print_models_step(ctx, &models, images.is_some());
    }
    let predict_args = crate::cli::PredictArgs {
        patients: None,
        since: None,
        as_of: None,
        no_heatmaps: false,
        no_fusion: false,
        chunk: 64,
    };
    if human {
        outln!("\n[5/8] prediction sets: every image and history model, fused per diagnosis");
    }
    let (predictions, prediction_error) = match super::predict::predict(ctx, light, &predict_args) {
        Ok(r) => (Some(r), None),
        // An empty or inconsistent registry is reported, not fatal: the rest of the demo stands.
        Err(e) => (None, Some(format!("{e:#}"))),
    };
    let example = if predictions.is_some() { example_set(ctx)? } else { None };
    if human {
        match (&predictions, &prediction_error) {
            (Some(r), _) => super::predict::print_human(r),
            (None, Some(e)) => outln!("not run: {e}"),
            (None, None) => {}
        }
        if let Some(set) = &example {
            outln!("\nfor example (`carelens predictions show {}`):", set.patient);
            super::predict::print_set(set);
        }
        outln!(
            "\nNext: `carelens stats` any time; `carelens generate --patients 100000 --seed 7 --data-dir DIR` for a bigger population."
        );
    }
    if human {
        outln!("\n[6/8] population KPIs for analysts (pseudonymised Parquet snapshot, polars)");
    }
    let analytics = super::analytics::demo_step(ctx)?;
    if human {
        super::analytics::print_demo(&analytics);
        outln!("\n[7/8] booking: availability from the practices' schedules and two platform feeds, merged");
    }
    let booking = super::availability::demo_step(ctx)?;
    if human {
        super::availability::print_demo(&booking);
    }
    let logins = super::serve::demo_logins(ctx, example.as_ref())?;
    // A signed checkpoint over the audit log as it stands, so `carelens audit verify` can tell
    // a shortened log from an intact one; serving signs again every 5 minutes.
    let checkpoint = match ctx.runtime.block_on(carelens_records::audit::checkpoint(
        ctx.store.as_ref(),
        &keys.audit,
        chrono::Utc::now(),
    )) {
        Ok(cp) => Some(cp.seq),
        Err(carelens_records::AuditError::Empty) => None,
        Err(e) => return Err(e.into()),
    };
    let serve = if args.no_serve { "skipped (--no-serve)" } else { "serving until Ctrl-C" };
    if ctx.json {
        output::json(&DemoReport {
            data_dir: ctx.data_dir.display().to_string(),
            keys: keys.path.display().to_string(),
            population,
            settled_appointments: settled,
            images,
            stats,
            models,
            predictions,
            example,
            analytics,
            booking,
            logins: logins.clone(),
            audit_checkpoint: checkpoint,
            serve,
        })?;
        return if args.no_serve { Ok(()) } else { super::serve::demo_serve(ctx, light, &args.serve, &keys, &logins) };
    }
    outln!("\n[8/8] web view (doctors, patients and analysts) and JSON API");
    match checkpoint {
        Some(seq) => outln!("audit log: signed checkpoint at entry {seq} (`carelens audit verify` checks it)"),
        None => outln!("audit log: empty so far; serving signs a checkpoint every 5 minutes"),
    }
    if args.no_serve {
        outln!("skipped (--no-serve); `carelens serve` starts it. Demo accounts (new passwords on every demo run):");
        for l in &logins {
            outln!("  {:<12} {:<14} password {}", l.role, l.username, l.password);
        }
        return Ok(());
    }
    super::serve::demo_serve(ctx, light, &args.serve, &keys, &logins)
}

fn print_models_step(ctx: &Context, models: &ModelsStep, with_images: bool) {
    if !with_images {
        outln!("skipped: no synthetic studies (--no-images)");
    } else if models.evaluations.is_empty() {
        outln!(
            "no image model trained on DICOM studies in {}; train one with\n  carelens train image --data {} --labels {} --modality xray --model chest-xray",
            models.registry,
            ctx.data_dir.join("incoming/synthetic").display(),
            ctx.data_dir.join("incoming/synthetic-labels.csv").display()
        );
    }
    for e in &models.evaluations {
        outln!();
        evaluate::print_human(e);
    }
    for (name, why) in &models.not_run {
        outln!("not run: {name}: {why}");
    }
}

/// Appointments of a population dated `as_of` that have ended since (booked or confirmed
/// when it was generated) become attended: checked in, then completed, as a practice would
/// record them. Returns how many. Nothing to do on the day the population was made.
fn settle_past_appointments(ctx: &Context, as_of: chrono::NaiveDate) -> Result<usize> {
    use carelens_domain::AppointmentStatus::{Booked, CheckedIn, Completed, Confirmed};
    let now = chrono::Utc::now();
    let from = as_of.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    if from >= now {
        return Ok(0);
    }
    let mut settled = 0;
    let mut page = carelens_store::PageRequest::first(500);
    loop {
        let providers = ctx.runtime.block_on(ctx.store.list_providers(page.clone()))?;
        for p in &providers.items {
            for a in ctx.runtime.block_on(ctx.store.appointments_for_provider(&p.id, from, now))? {
                if matches!(a.status, Booked | Confirmed) && a.end <= now {
                    ctx.runtime.block_on(ctx.store.set_appointment_status(&a.id, CheckedIn, a.start))?;
                    ctx.runtime.block_on(ctx.store.set_appointment_status(&a.id, Completed, a.end))?;
                    settled += 1;
                }
            }
        }
        match providers.next {
            Some(next) => page = next,
            None => return Ok(settled),
        }
    }
}
