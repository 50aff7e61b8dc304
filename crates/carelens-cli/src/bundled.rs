//! The committed default models, compiled into the binary (`build.rs`), and the registry they
//! are unpacked into: `<data dir>/models`, the default of `--models`.
//!
//! Every bundled version is checked before it is used: an image model's weights against the
//! SHA-256 in its `model.json`, and a version already unpacked against the bundled bytes, file
//! by file. A mismatch is an error that names the model and says what to do; nothing is
//! silently skipped or overwritten. Versions trained later sit beside the bundled ones.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use carelens_ml::sha256_hex;

mod files {
    include!(concat!(env!("OUT_DIR"), "/bundled_models.rs"));
}

/// One bundled version: `name`, `vN`, and its files `(file name, bytes)`.
struct Version<'a> {
    name: &'a str,
    version: &'a str,
    files: Vec<File<'a>>,
}

/// A model file: `(name inside its version folder, bytes)`.
type File<'a> = (&'a str, &'a [u8]);

fn versions(all: &'static [(&'static str, &'static [u8])]) -> Result<Vec<Version<'static>>> {
    let mut by: BTreeMap<(&str, &str), Vec<File<'static>>> = BTreeMap::new();
    for (path, bytes) in all {
        let mut parts = path.splitn(3, '/');
        let (Some(name), Some(version), Some(file)) = (parts.next(), parts.next(), parts.next()) else {
            bail!("bundled model file {path} is not <name>/v<N>/<file>");
        };
        by.entry((name, version)).or_default().push((file, bytes));
    }
    Ok(by.into_iter().map(|((name, version), files)| Version { name, version, files }).collect())
}

/// Checks a bundled version on its own: `model.json` present, and an image model's weights
/// matching the digest its manifest records.
fn check(v: &Version<'_>) -> Result<()> {
    let manifest = v
        .files
        .iter()
        .find(|(f, _)| *f == "model.json")
        .with_context(|| format!("bundled model {} {} has no model.json", v.name, v.version))?;
    let json: serde_json::Value = serde_json::from_slice(manifest.1)
        .with_context(|| format!("bundled model {} {}: model.json is not JSON", v.name, v.version))?;
    if let Some(want) = json["body"]["weights_sha256"].as_str() {
        let weights = v.files.iter().find(|(f, _)| *f == "weights.mpk");
        let got = weights.map(|(_, b)| sha256_hex(b));
        if got.as_deref() != Some(want) {
            bail!(
                "bundled model {} {}: weights.mpk has sha256 {}, its model.json expects {want}; this carelens \
                 binary is damaged: rebuild or reinstall it",
                v.name,
                v.version,
                got.as_deref().unwrap_or("(missing)")
            );
        }
    }
    Ok(())
}

/// Makes sure `root` holds every bundled version, byte for byte, unpacking the missing ones
/// (each written to a temporary folder and renamed into place). Returns how many it unpacked.
pub fn unpack(root: &Path) -> Result<usize> {
    unpack_files(files::FILES, root)
}

fn unpack_files(all: &'static [(&'static str, &'static [u8])], root: &Path) -> Result<usize> {
    let mut unpacked = 0;
    for v in versions(all)? {
        check(&v)?;
        let dir = root.join(v.name).join(v.version);
        if dir.is_dir() {
            for (file, bytes) in &v.files {
                let path = dir.join(file);
                let same = fs_err::read(&path).is_ok_and(|disk| sha256_hex(&disk) == sha256_hex(bytes));
                if !same {
                    bail!(
                        "the model registry {}: {} {} differs from the version bundled with this carelens ({file} \
                         is missing or changed); remove {} to restore the bundled version, or pass --models DIR \
                         to use another registry",
                        root.display(),
                        v.name,
                        v.version,
                        dir.display()
                    );
                }
            }
            continue;
        }
        let parent = root.join(v.name);
        fs_err::create_dir_all(&parent)?;
        let tmp = parent.join(format!(".{}.unpacking-{}", v.version, std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        fs_err::create_dir(&tmp)?;
        for (file, bytes) in &v.files {
            fs_err::write(tmp.join(file), bytes)?;
        }
        if let Err(e) = std::fs::rename(&tmp, &dir) {
            let _ = std::fs::remove_dir_all(&tmp);
            // Another carelens process unpacked the same version first: check it as above.
            if !dir.is_dir() {
                return Err(e).with_context(|| format!("cannot move the bundled model into {}", dir.display()));
            }
            return unpack_files(all, root).map(|n| n + unpacked);
        }
        unpacked += 1;
    }
    Ok(unpacked)
}

/// The registry `--models` defaults to: `<data dir>/models`, with the bundled models in it.
pub fn default_registry(data_dir: &Path) -> Result<PathBuf> {
    let root = data_dir.join("models");
    let n = unpack(&root).with_context(|| format!("preparing the bundled models in {}", root.display()))?;
    if n > 0 {
        tracing::info!(versions = n, registry = %root.display(), "unpacked the bundled models");
    }
    Ok(root)
}

/// The names of the bundled models with their versions, e.g. `chest-xray v1`.
#[cfg(test)]
fn names() -> Vec<String> {
    versions(files::FILES).unwrap_or_default().iter().map(|v| format!("{} {}", v.name, v.version)).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_committed_models_are_bundled() {
        let names = names();
        for model in ["chest-xray v1", "chest-ct v1", "fusion v1", "history-e11 v1"] {
            assert!(names.iter().any(|n| n == model), "{model} is not bundled: {names:?}");
        }
    }

    #[test]
    fn unpacking_is_idempotent_and_refuses_a_changed_version() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("models");
        let n = unpack(&root).unwrap();
        assert_eq!(n, names().len());
        assert_eq!(unpack(&root).unwrap(), 0, "a second run unpacks nothing");
        let weights = root.join("chest-xray/v1/weights.mpk");
        let mut bytes = std::fs::read(&weights).unwrap();
        bytes[100] ^= 1;
        std::fs::write(&weights, bytes).unwrap();
        let err = format!("{:#}", unpack(&root).unwrap_err());
        assert!(err.contains("chest-xray v1") && err.contains("weights.mpk"), "{err}");
        assert!(err.contains("remove"), "says what to do: {err}");
        // A new version beside the bundled ones is fine.
        std::fs::remove_dir_all(root.join("chest-xray/v1")).unwrap();
        std::fs::create_dir_all(root.join("chest-xray/v2")).unwrap();
        assert_eq!(unpack(&root).unwrap(), 1);
    }

    #[test]
    fn damaged_bundled_weights_are_named() {
        static DAMAGED: &[(&str, &[u8])] = &[
            ("net/v1/model.json", br#"{"body": {"kind": "image", "weights_sha256": "00"}}"#),
            ("net/v1/weights.mpk", b"not the weights"),
        ];
        let dir = tempfile::tempdir().unwrap();
        let err = format!("{:#}", unpack_files(DAMAGED, dir.path()).unwrap_err());
        assert!(err.contains("bundled model net v1: weights.mpk has sha256"), "{err}");
        assert!(!dir.path().join("net/v1").exists(), "nothing unpacked");
    }
}
