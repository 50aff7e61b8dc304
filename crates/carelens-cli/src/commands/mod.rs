//! One module per subcommand.

mod analytics;
mod audit;
mod availability;
mod backend;
mod demo;
mod demo_keys;
mod evaluate;
mod export;
mod fhir;
mod generate;
mod image_data;
mod images;
mod ingest;
mod migrate;
mod models;
mod notify;
mod plots;
mod predict;
mod records;
mod serve;
mod stats;
mod train;

use anyhow::Result;

use crate::cli::{
    AuditCommand, AvailabilityCommand, Cli, Command, ExportCommand, IngestCommand, KpiCommand, NotifyCommand,
    PredictionsCommand, RecordsCommand, TrainCommand, UsersCommand,
};
use crate::context::{Context, Create, Light};

pub fn run(cli: Cli) -> Result<()> {
    let g = cli.global;
    // The registry is resolved (and the bundled models unpacked) only for commands that use it.
    let (models, data_dir, json, quiet) = (g.models.clone(), g.data_dir.clone(), g.json, g.quiet);
    let light = || -> Result<Light> {
        let models = match models.clone() {
            Some(dir) if dir.exists() && !dir.is_dir() => {
                anyhow::bail!(
                    "--models {} is a file; a model registry is a folder of <name>/v<N>/ folders",
                    dir.display()
                )
            }
            Some(dir) => dir,
            None => {
                crate::bundled::default_registry(&data_dir.clone().unwrap_or_else(crate::context::default_data_dir))?
            }
        };
        Ok(Light { models, json, quiet })
    };
    // Model commands need no store.
    match &cli.command {
        Command::Train(TrainCommand::Image(args)) => return train::image(&light()?, args),
        Command::Train(TrainCommand::Tabular(args)) => return train::tabular(&light()?, args),
        Command::Evaluate(args) => return evaluate::run(&light()?, args),
        Command::Models(cmd) => return models::run(&light()?, cmd),
        Command::Kpi(KpiCommand::List) => return analytics::list(g.json),
        _ => {}
    }
    let create = match &cli.command {
        Command::Audit(AuditCommand::Keygen) | Command::Records(RecordsCommand::Keygen) => Create::Quietly,
        Command::Demo(_) | Command::Generate(_) | Command::Ingest(_) | Command::Users(_) => Create::Yes,
        _ if g.init => Create::Yes,
        _ => Create::No,
    };
    let ctx = Context::open(g.data_dir, g.store, g.objects, create, g.json, g.quiet)?;
    match cli.command {
        Command::Demo(args) => demo::run(&ctx, &light()?, &args),
        Command::Generate(args) => generate::run(&ctx, &args),
        Command::Stats(args) => stats::run(&ctx, &args),
        Command::Patients(args) => stats::patients(&ctx, &args),
        Command::Migrate(args) => migrate::run(&ctx, &args),
        Command::Ingest(IngestCommand::Images(args)) => ingest::run(&ctx, &args),
        Command::Ingest(IngestCommand::Fhir(args)) => fhir::import(&ctx, &args),
        Command::Export(ExportCommand::Fhir(args)) => fhir::export(&ctx, &args),
        Command::Export(ExportCommand::Images(args)) => export::run(&ctx, &args),
        Command::Export(ExportCommand::Features(args)) => export::features(&ctx, &args),
        Command::Export(ExportCommand::Feedback(args)) => export::feedback(&ctx, &args),
        Command::Export(ExportCommand::Analytics(args)) => analytics::export(&ctx, &args),
        Command::Kpi(KpiCommand::Show(args)) => analytics::show(&ctx, &args),
        Command::Kpi(KpiCommand::Run(args)) => analytics::run(&ctx, &args),
        Command::Availability(AvailabilityCommand::Import(args)) => availability::import(&ctx, &args),
        Command::Availability(AvailabilityCommand::Samples(args)) => availability::samples(&ctx, &args),
        Command::Notify(NotifyCommand::Send(args)) => notify::send(&ctx, &args),
        Command::Notify(NotifyCommand::Status) => notify::status(&ctx),
        Command::Audit(AuditCommand::Verify(args)) => audit::verify(&ctx, &args),
        Command::Audit(AuditCommand::Checkpoint(args)) => audit::checkpoint(&ctx, &args),
        Command::Audit(AuditCommand::Keygen) => audit::keygen(&ctx),
        Command::Records(RecordsCommand::Verify(args)) => records::verify(&ctx, &args),
        Command::Records(RecordsCommand::RotateKeys) => records::rotate_keys(&ctx),
        Command::Records(RecordsCommand::Keygen) => records::keygen(&ctx),
        Command::Train(TrainCommand::Fusion(args)) => predict::train_fusion(&ctx, &light()?, &args),
        Command::Predict(args) => predict::run(&ctx, &light()?, &args),
        Command::Predictions(PredictionsCommand::Show(args)) => predict::show(&ctx, &args),
        Command::Serve(args) => serve::run(&ctx, &light()?, &args),
        Command::Users(UsersCommand::Add(args)) => serve::add_user(&ctx, &args),
        Command::Train(_) | Command::Evaluate(_) | Command::Models(_) | Command::Kpi(KpiCommand::List) => {
            unreachable!("handled above")
        }
    }
}
