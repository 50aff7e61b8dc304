//! The `carelens` command-line tool.

#[macro_use]
mod output;
mod bundled;
mod cli;
mod commands;
mod context;
mod env;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Under --json, stdout is one JSON document even when the command fails.
    let json = std::env::args_os().any(|a| a == "--json");
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if json && e.use_stderr() => {
            let message = e.render().to_string();
            eprint!("{message}");
            let first = message.lines().next().unwrap_or_default().trim_start_matches("error: ").to_owned();
            println!("{}", serde_json::json!({"error": first, "kind": "usage", "exit_code": 2}));
            return ExitCode::from(2);
        }
        Err(e) => e.exit(),
    };
    // A server logs one line per request by default; other commands only warnings.
    let serving = match &cli.command {
        cli::Command::Serve(_) => true,
        cli::Command::Demo(d) => !d.no_serve,
        _ => false,
    };
    init_logging(cli.global.verbose, cli.global.quiet, serving);
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Error chains name what failed and where; they never carry patient data.
            eprintln!("error: {e:#}");
            if json && !output::json_printed() {
                println!("{}", serde_json::json!({"error": format!("{e:#}"), "exit_code": 1}));
            }
            ExitCode::FAILURE
        }
    }
}

fn init_logging(verbose: u8, quiet: bool, serving: bool) {
    use tracing_subscriber::EnvFilter;
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let filter = std::env::var(env::CARELENS_LOG)
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        // dicom-rs warns about quirks of individual files (character sets, missing meta
        // elements); the ingest report says what matters per file.
        .unwrap_or_else(|| {
            let access = if serving && !quiet { ",carelens_server=info,carelens::access=info" } else { "" };
            EnvFilter::new(format!(
                "{default}{access},dicom_parser=error,dicom_object=error,dicom_encoding=error,dicom_pixeldata=error,dicom_transfer_syntax_registry=error"
            ))
        });
    use std::io::IsTerminal as _;
    // Colour codes only on a terminal: server logs usually go to files and collectors.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}
