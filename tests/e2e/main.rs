//! End-to-end tests: drive the real `carelens` binary as a user would.
//!
//! The binary is found through `CARELENS_BIN`, else next to this test executable
//! (`target/<profile>/carelens`). The README test command builds it first.

#![allow(clippy::unwrap_used)]

mod analytics;
mod audit;
mod backends;
mod bad_input;
mod booking;
mod cli;
mod crash;
mod documents;
mod fhir;
mod first_run;
mod generate;
mod imaging;
mod models;
mod predict;
mod privacy;
mod serve;
mod storm;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn carelens_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("CARELENS_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>");
    let bin = profile_dir.join(format!("carelens{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} not found: build it first with `cargo build -p carelens-cli` (the README test command does), \
         or set CARELENS_BIN",
        bin.display()
    );
    bin
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port").local_addr().expect("its address").port()
}

/// A `carelens` invocation in a fresh data directory.
pub struct Carelens {
    pub dir: tempfile::TempDir,
}

impl Default for Carelens {
    fn default() -> Self {
        Self::new()
    }
}

impl Carelens {
    pub fn new() -> Self {
        Self { dir: tempfile::tempdir().expect("temp dir") }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(carelens_bin());
        c.env_remove("CARELENS_LOG")
            .env_remove("RUST_LOG")
            .env("CARELENS_DATA_DIR", self.data_dir())
            .env("CARELENS_MODELS", self.dir.path().join("models"))
            // The demo population is dated today by default; tests pin the date they were written for.
            .env("CARELENS_DEMO_AS_OF", "2026-10-01");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("run carelens")
    }

    /// Runs and expects success; returns stdout.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "carelens {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    #[track_caller]
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let stdout = self.ok(&all);
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("stdout of {args:?} is not one JSON document: {e}\n{stdout}"))
    }

    /// Runs and expects failure with `code`; returns stderr.
    #[track_caller]
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(code), "carelens {args:?}: stdout {}", String::from_utf8_lossy(&out.stdout));
        String::from_utf8(out.stderr).expect("utf-8 stderr")
    }
}
