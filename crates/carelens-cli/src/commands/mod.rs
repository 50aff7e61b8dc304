//! One module per subcommand.

mod demo;
mod export;
mod generate;
mod images;
mod ingest;
mod migrate;
mod stats;

use anyhow::Result;

use crate::cli::{Cli, Command, ExportCommand, IngestCommand};
use crate::context::Context;

pub fn run(cli: Cli) -> Result<()> {
    let g = cli.global;
    let ctx = Context::open(g.data_dir, g.store, g.objects, g.json, g.quiet)?;
    match cli.command {
        Command::Demo(args) => demo::run(&ctx, &args),
        Command::Generate(args) => generate::run(&ctx, &args),
        Command::Stats(args) => stats::run(&ctx, &args),
        Command::Migrate(args) => migrate::run(&ctx, &args),
        Command::Ingest(IngestCommand::Images(args)) => ingest::run(&ctx, &args),
        Command::Export(ExportCommand::Images(args)) => export::run(&ctx, &args),
    }
}
