//! The data directory and the stores opened in it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use carelens_store::{ObjectStore, Store, open_objects, open_store, redact_url};

use crate::env;

/// File name of the embedded store inside the data directory.
pub const STORE_FILE: &str = "carelens.sqlite";

/// Whether [`Context::open`] may create a store where there is none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    No,
    /// With a note on stderr.
    Yes,
    /// Commands that never read the store (key generation).
    Quietly,
}

pub struct Context {
    pub data_dir: PathBuf,
    /// Where the store and objects are, for messages (credentials removed).
    pub store_location: String,
    pub objects_location: String,
    pub store: Arc<dyn Store>,
    pub objects: Arc<dyn ObjectStore>,
    pub runtime: tokio::runtime::Runtime,
    pub json: bool,
    pub quiet: bool,
}

/// `$XDG_DATA_HOME/carelens`, else `~/.local/share/carelens`, else `./carelens-data`.
pub fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os(env::XDG_DATA_HOME).filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("carelens");
    }
    if let Some(h) = std::env::var_os(env::HOME).filter(|v| !v.is_empty()) {
        return PathBuf::from(h).join(".local/share/carelens");
    }
    PathBuf::from("carelens-data")
}

fn ensure_writable_dir(dir: &Path) -> Result<()> {
    let hint = || {
        format!(
            "cannot use data directory {}; choose a writable directory with --data-dir or {}",
            dir.display(),
            env::CARELENS_DATA_DIR
        )
    };
    fs_err::create_dir_all(dir).with_context(hint)?;
    let probe = dir.join(".carelens-write-test");
    fs_err::write(&probe, b"ok").with_context(hint)?;
    fs_err::remove_file(&probe).with_context(hint)?;
    Ok(())
}

impl Context {
    /// Opens the stores. With the embedded default, a data directory without a store is
    /// refused unless `create` (commands that bring data, or `--init`): a mistyped
    /// `--data-dir` must not look like an empty population.
    pub fn open(
        data_dir: Option<PathBuf>,
        store: Option<String>,
        objects: Option<String>,
        create: Create,
        json: bool,
        quiet: bool,
    ) -> Result<Self> {
        let data_dir = data_dir.unwrap_or_else(default_data_dir);
        if store.is_none() && !data_dir.join(STORE_FILE).exists() {
            match create {
                Create::No => anyhow::bail!(
                    "no carelens data in {} (no {STORE_FILE}): check --data-dir / {}; `carelens demo` or `carelens \
                     generate` makes a population there, and --init makes an empty store",
                    data_dir.display(),
                    env::CARELENS_DATA_DIR
                ),
                Create::Yes if !quiet => {
                    eprintln!("note: new data directory {}: starting with an empty store", data_dir.display())
                }
                Create::Yes | Create::Quietly => {}
            }
        }
        ensure_writable_dir(&data_dir)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let store_url = store.unwrap_or_else(|| format!("sqlite://{}", data_dir.join(STORE_FILE).display()));
        let objects_url = objects.unwrap_or_else(|| format!("file://{}", data_dir.join("objects").display()));
        let (store_location, objects_location) = (redact_url(&store_url), redact_url(&objects_url));
        let store = runtime
            .block_on(open_store(&store_url))
            .with_context(|| format!("cannot open the store (--store {store_location})"))?;
        let objects = runtime
            .block_on(open_objects(&objects_url))
            .with_context(|| format!("cannot open the object store (--objects {objects_location})"))?;
        tracing::info!(store = %store_location, objects = %objects_location, "opened stores");
        Ok(Self { data_dir, store_location, objects_location, store, objects, runtime, json, quiet })
    }

    /// A progress bar on stderr (hidden when stderr is not a terminal or with --quiet).
    pub fn progress(&self, len: u64, what: &str) -> indicatif::ProgressBar {
        progress_bar(self.quiet, len, what)
    }
}

/// A progress bar on stderr (hidden when stderr is not a terminal or with --quiet).
fn progress_bar(quiet: bool, len: u64, what: &str) -> indicatif::ProgressBar {
    {
        if quiet {
            return indicatif::ProgressBar::hidden();
        }
        let bar = indicatif::ProgressBar::with_draw_target(Some(len), indicatif::ProgressDrawTarget::stderr());
        let style =
            indicatif::ProgressStyle::with_template("{msg:>12} [{bar:40}] {human_pos}/{human_len} {per_sec} eta {eta}")
                .map(|s| s.progress_chars("=> "))
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_message(what.to_owned());
        bar
    }
}

/// What commands that need no store get: model registry and output settings.
#[derive(Debug, Clone)]
pub struct Light {
    pub models: PathBuf,
    pub json: bool,
    pub quiet: bool,
}

impl Light {
    pub fn progress(&self, len: u64, what: &str) -> indicatif::ProgressBar {
        progress_bar(self.quiet, len, what)
    }
}

/// A progress bar as the ingest/export libraries' [`carelens_ingest::Progress`].
pub struct Bar(pub indicatif::ProgressBar);

impl carelens_ingest::Progress for Bar {
    fn start(&self, n: u64) {
        self.0.set_length(n);
    }
    fn advance(&self, _: carelens_ingest::Outcome) {
        self.0.inc(1);
    }
}
