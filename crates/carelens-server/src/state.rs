//! What every handler shares: the stores, the model registry, the token key, the limits and
//! the prediction-run table.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use carelens_store::{ObjectStore, Store};

use crate::auth::TokenKey;
use crate::directory::SearchDirectory;
use crate::jobs::{Jobs, PredictionRunner};

/// Limits and lifetimes; the CLI fills them from flags and environment.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// How long a token from `POST /api/v1/auth/login` is valid.
    pub token_ttl: Duration,
    /// Largest request body accepted (413 above).
    pub max_body_bytes: usize,
    /// Longest a request may take before it is answered 503 `timeout`.
    pub request_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            token_ttl: Duration::from_secs(15 * 60),
            max_body_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub objects: Arc<dyn ObjectStore>,
    /// The model registry folder (read-only here).
    pub models: PathBuf,
    pub tokens: TokenKey,
    pub config: Arc<ServerConfig>,
    pub jobs: Arc<Jobs>,
    /// Where analytics snapshots are cached (`<data dir>/analytics`); `None`: no KPIs here.
    pub analytics: Option<PathBuf>,
    /// Providers with their earliest openings, for search (see [`crate::directory`]).
    pub directory: Arc<SearchDirectory>,
    /// Master keys for documents (`CARELENS_MASTER_KEY`); `None`: uploads answer
    /// `encryption_not_configured`.
    pub keys: Option<carelens_records::keys::Keyring>,
}

impl AppState {
    pub fn new(
        store: Arc<dyn Store>,
        objects: Arc<dyn ObjectStore>,
        models: PathBuf,
        tokens: TokenKey,
        config: ServerConfig,
        runner: Option<Arc<dyn PredictionRunner>>,
    ) -> Self {
        Self {
            store,
            objects,
            models,
            tokens,
            config: Arc::new(config),
            jobs: Arc::new(Jobs::new(runner)),
            analytics: None,
            directory: Arc::new(SearchDirectory::default()),
            keys: None,
        }
    }

    /// Encrypts and decrypts documents with `keys`.
    pub fn with_keys(mut self, keys: carelens_records::keys::Keyring) -> Self {
        self.keys = Some(keys);
        self
    }

    /// Serves KPIs from snapshots cached under `dir`.
    pub fn with_analytics(mut self, dir: PathBuf) -> Self {
        self.analytics = Some(dir);
        self
    }
}
