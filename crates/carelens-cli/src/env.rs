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
/// Key that signs the server's bearer tokens (64+ hex digits). Unset: a random key per start,
/// so a restart signs everyone out. Never commit it.
pub const CARELENS_TOKEN_KEY: &str = "CARELENS_TOKEN_KEY";
/// Address `carelens serve` listens on (same as `--bind`).
pub const CARELENS_BIND: &str = "CARELENS_BIND";
/// Default variable `carelens users add` reads the new password from.
pub const CARELENS_NEW_PASSWORD: &str = "CARELENS_NEW_PASSWORD";
/// Key for the pseudonyms of analytics snapshots (at least 16 characters). Set: the same
/// patient has the same pseudonym in every snapshot (longitudinal analysis). Unset: a random
/// key per snapshot, so snapshots do not link. Never commit it.
pub const CARELENS_PSEUDONYM_KEY: &str = "CARELENS_PSEUDONYM_KEY";
/// Where booking confirmations and reminders go (same as `notify send --mail`):
/// `smtp://host:port`, `smtps://user:password@host`, or `file:///directory`. Set, `carelens
/// serve` delivers the outbox every 30 seconds. Credentials in it are never logged.
pub const CARELENS_MAIL_URL: &str = "CARELENS_MAIL_URL";
/// The Ed25519 key (64 hex digits) that signs audit checkpoints; `carelens audit keygen`
/// makes one. Set, `carelens serve` signs the log's head every 5 minutes. Never commit it.
pub const CARELENS_AUDIT_KEY: &str = "CARELENS_AUDIT_KEY";
/// The master key (64 hex digits) that wraps documents' data keys and users' server-held
/// signing keys; `carelens records keygen` makes one. Unset, `serve` refuses document
/// uploads (`encryption_not_configured`). From your secret store or KMS; never commit it.
pub const CARELENS_MASTER_KEY: &str = "CARELENS_MASTER_KEY";
/// The master key being rotated away from, read (never written with) by `records rotate-keys`
/// and `serve` until the rotation is done.
pub const CARELENS_MASTER_KEY_PREVIOUS: &str = "CARELENS_MASTER_KEY_PREVIOUS";
/// The sender address of those messages.
pub const CARELENS_MAIL_FROM: &str = "CARELENS_MAIL_FROM";
/// Date `carelens demo` generates its population as of (same as `demo --as-of`; default
/// today). Pin it where the same population is wanted every day (scripts, CI).
pub const CARELENS_DEMO_AS_OF: &str = "CARELENS_DEMO_AS_OF";
