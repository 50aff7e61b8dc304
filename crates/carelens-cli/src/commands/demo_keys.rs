//! The demo data directory's own keys: a master key (documents) and an audit signing key
//! (checkpoints), made on the demo's first run into `<data dir>/demo-keys.env`, readable by
//! the user only. Only `carelens demo` uses them, and only when the environment supplies none:
//! production supplies its own keys from the environment, and `serve` never invents one.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use carelens_records::audit::AuditKey;
use carelens_records::keys::{Keyring, MasterKey};

use crate::env::{CARELENS_AUDIT_KEY, CARELENS_MASTER_KEY};

/// File name inside the data directory.
pub const FILE: &str = "demo-keys.env";

/// The keys the demo serves with, and where they came from.
pub struct DemoKeys {
    pub path: PathBuf,
    /// Made on this run (else read back from the file).
    pub created: bool,
    pub keyring: Keyring,
    pub audit: AuditKey,
}

fn random_hex() -> Result<String> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness from the OS: {e}"))?;
    Ok(seed.iter().map(|b| format!("{b:02x}")).collect())
}

fn value<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().filter_map(|l| l.trim().strip_prefix(name)?.strip_prefix('=')).map(str::trim).next()
}

/// Reads `<data dir>/demo-keys.env`, making it (mode 0600) when it does not exist. Keys set
/// in the environment win over the file's.
pub fn load_or_create(data_dir: &Path) -> Result<DemoKeys> {
    let path = data_dir.join(FILE);
    let created = !path.exists();
    if created {
        let text = format!(
            "# Keys of this carelens demo data directory, made by `carelens demo`; for the demo only.\n\
             # Production supplies its own keys from the environment (a secret store or KMS) and never\n\
             # keeps them beside the data. To use these with other commands here: set -a; . ./{FILE}; set +a\n\
             {CARELENS_MASTER_KEY}={}\n{CARELENS_AUDIT_KEY}={}\n",
            random_hex()?,
            random_hex()?
        );
        write_private(&path, &text)?;
    }
    check_private(&path)?;
    let text = fs_err::read_to_string(&path)?;
    let from = |name: &str| -> Result<String> {
        match std::env::var(name) {
            Ok(v) if !v.trim().is_empty() => Ok(v),
            _ => value(&text, name).map(str::to_owned).with_context(|| {
                format!("{} has no {name}= line; remove the file to make new demo keys", path.display())
            }),
        }
    };
    let keyring = match Keyring::from_env()? {
        Some(k) => k,
        None => Keyring::new(MasterKey::from_hex(&from(CARELENS_MASTER_KEY)?, CARELENS_MASTER_KEY)?, vec![]),
    };
    let audit = AuditKey::from_hex(&from(CARELENS_AUDIT_KEY)?).with_context(|| path.display().to_string())?;
    Ok(DemoKeys { path, created, keyring, audit })
}

/// Writes `text` to a new file only the user can read, then renames it into place.
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension("env.tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut f = options.open(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    f.write_all(text.as_bytes()).with_context(|| format!("cannot write {}", tmp.display()))?;
    f.sync_all().ok();
    fs_err::rename(&tmp, path)?;
    Ok(())
}

/// Refuses a key file that others can read.
fn check_private(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs_err::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            bail!(
                "{} is readable by other users (mode {:o}); run `chmod 600 {}` or remove it to make new demo keys",
                path.display(),
                mode & 0o777,
                path.display()
            );
        }
    }
    Ok(())
}

/// Whether `data_dir` is a demo data directory with its own key file (for hints).
pub fn exists(data_dir: &Path) -> Option<PathBuf> {
    let p = data_dir.join(FILE);
    p.is_file().then_some(p)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keys_are_made_once_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path()).unwrap();
        assert!(first.created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&first.path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let again = load_or_create(dir.path()).unwrap();
        assert!(!again.created);
        assert_eq!(again.audit.public_hex(), first.audit.public_hex());
        assert_eq!(again.keyring.current().id(), first.keyring.current().id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&first.path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let err = format!("{:#}", load_or_create(dir.path()).err().unwrap());
            assert!(err.contains("chmod 600"), "{err}");
        }
    }
}
