//! One module per subcommand.

mod demo;
mod generate;
mod stats;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::context::Context;

pub fn run(cli: Cli) -> Result<()> {
    let ctx = Context::open(cli.global.data_dir, cli.global.json, cli.global.quiet)?;
    match cli.command {
        Command::Demo(args) => demo::run(&ctx, &args),
        Command::Generate(args) => generate::run(&ctx, &args),
        Command::Stats(args) => stats::run(&ctx, &args),
    }
}
