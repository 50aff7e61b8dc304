//! Every environment variable carelens reads, in one place.

/// Data directory holding the embedded store and local objects (same as `--data-dir`).
pub const CARELENS_DATA_DIR: &str = "CARELENS_DATA_DIR";
/// Log filter (tracing `EnvFilter` syntax), e.g. `info` or `carelens_store=debug`.
pub const CARELENS_LOG: &str = "CARELENS_LOG";
/// Used to find the default data directory.
pub const XDG_DATA_HOME: &str = "XDG_DATA_HOME";
pub const HOME: &str = "HOME";
/// Document store URL (same as `--store`).
pub const CARELENS_STORE: &str = "CARELENS_STORE";
/// Object store URL (same as `--objects`).
pub const CARELENS_OBJECTS: &str = "CARELENS_OBJECTS";
/// Secret key for de-identified exports: pseudonyms, remapped UIDs and date shifts are
/// derived from it, so the same secret gives consistent exports. At least 16 characters;
/// never commit it.
pub const CARELENS_DEID_SECRET: &str = "CARELENS_DEID_SECRET";
/// Model registry folder (same as `--models`).
pub const CARELENS_MODELS: &str = "CARELENS_MODELS";
