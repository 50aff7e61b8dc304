//! Objects as files under a root directory, content-addressed by SHA-256.

use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use carelens_domain::ObjectKey;
use sha2::{Digest, Sha256};

use crate::{ObjectStore, Result, StoreError};

/// A local object store. Writes go to a temporary file that is synced and then renamed into
/// place, so a crash never leaves a partial object under a real key.
#[derive(Debug, Clone)]
pub struct LocalObjects {
    root: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_path_buf(), source }
}

impl LocalObjects {
    /// Uses (creating if needed) `root` as the object directory.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        fs_err::create_dir_all(root.join("tmp")).map_err(|source| StoreError::Io { path: root.clone(), source })?;
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, key: &ObjectKey) -> PathBuf {
        self.root.join(key.as_str())
    }

    fn put_blocking(root: &Path, bytes: &[u8]) -> Result<ObjectKey> {
        let digest = hex::encode(Sha256::digest(bytes));
        let key = ObjectKey::for_sha256(&digest)
            .map_err(|e| StoreError::Backend { backend: "file", message: e.to_string() })?;
        let dest = root.join(key.as_str());
        if dest.exists() {
            return Ok(key);
        }
        let parent = dest.parent().unwrap_or(root);
        std::fs::create_dir_all(parent).map_err(io(parent))?;
        let tmp_dir = root.join("tmp");
        let mut tmp = tempfile::NamedTempFile::new_in(&tmp_dir).map_err(io(&tmp_dir))?;
        tmp.write_all(bytes).map_err(io(tmp.path()))?;
        tmp.as_file().sync_all().map_err(io(&dest))?;
        tmp.persist(&dest).map_err(|e| StoreError::Io { path: dest.clone(), source: e.error })?;
        Ok(key)
    }
}

#[async_trait]
impl ObjectStore for LocalObjects {
    fn backend(&self) -> &'static str {
        "file"
    }

    async fn put(&self, bytes: Vec<u8>) -> Result<ObjectKey> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || Self::put_blocking(&root, &bytes))
            .await
            .map_err(|e| StoreError::Backend { backend: "file", message: e.to_string() })?
    }

    async fn get(&self, key: &ObjectKey) -> Result<Vec<u8>> {
        let path = self.path_of(key);
        let key = key.clone();
        tokio::task::spawn_blocking(move || {
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(StoreError::NotFound { entity: "object", id: key.to_string() });
                }
                Err(source) => return Err(StoreError::Io { path, source }),
            };
            if let Some(expected) = key.as_str().strip_prefix("sha256/").and_then(|r| r.rsplit('/').next())
                && hex::encode(Sha256::digest(&bytes)) != expected
            {
                return Err(StoreError::Damaged { key: key.to_string() });
            }
            Ok(bytes)
        })
        .await
        .map_err(|e| StoreError::Backend { backend: "file", message: e.to_string() })?
    }

    async fn copy_to(&self, key: &ObjectKey, dest: &Path) -> Result<u64> {
        let src = self.path_of(key);
        let (key, dest) = (key.clone(), dest.to_path_buf());
        tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let mut input = match std::fs::File::open(&src) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(StoreError::NotFound { entity: "object", id: key.to_string() });
                }
                Err(source) => return Err(StoreError::Io { path: src, source }),
            };
            let mut output = std::fs::File::create(&dest).map_err(io(&dest))?;
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 1 << 20];
            let mut written = 0u64;
            loop {
                let n = input.read(&mut buf).map_err(io(&src))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                output.write_all(&buf[..n]).map_err(io(&dest))?;
                written += n as u64;
            }
            output.sync_all().map_err(io(&dest))?;
            let expected = key.as_str().strip_prefix("sha256/").and_then(|r| r.rsplit('/').next());
            if expected.is_some_and(|e| e != hex::encode(hasher.finalize())) {
                let _ = std::fs::remove_file(&dest);
                return Err(StoreError::Damaged { key: key.to_string() });
            }
            Ok(written)
        })
        .await
        .map_err(|e| StoreError::Backend { backend: "file", message: e.to_string() })?
    }

    async fn presigned_get(&self, _key: &ObjectKey, _expires: std::time::Duration) -> Result<Option<String>> {
        Ok(None)
    }

    async fn exists(&self, key: &ObjectKey) -> Result<bool> {
        Ok(self.path_of(key).is_file())
    }

    async fn delete(&self, key: &ObjectKey) -> Result<()> {
        let path = self.path_of(key);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectKey>> {
        let root = self.root.clone();
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let mut stack = vec![root.clone()];
            while let Some(dir) = stack.pop() {
                let entries = match std::fs::read_dir(&dir) {
                    Ok(e) => e,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(source) => return Err(StoreError::Io { path: dir, source }),
                };
                for entry in entries {
                    let entry = entry.map_err(io(&dir))?;
                    let path = entry.path();
                    let rel = path.strip_prefix(&root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
                    if rel == "tmp" {
                        continue;
                    }
                    if path.is_dir() {
                        // Only descend where the prefix can still match.
                        let as_dir = format!("{rel}/");
                        if as_dir.starts_with(&prefix) || prefix.starts_with(&as_dir) {
                            stack.push(path);
                        }
                    } else if rel.starts_with(&prefix)
                        && let Ok(key) = rel.parse::<ObjectKey>()
                    {
                        out.push(key);
                    }
                }
            }
            out.sort();
            Ok(out)
        })
        .await
        .map_err(|e| StoreError::Backend { backend: "file", message: e.to_string() })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance;

    #[tokio::test]
    async fn local_objects_pass_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalObjects::open(dir.path().join("objects")).unwrap();
        conformance::run_object_suite(&store).await;
        let key = store.put(b"x".to_vec()).await.unwrap();
        assert_eq!(store.presigned_get(&key, std::time::Duration::from_secs(60)).await.unwrap(), None);
    }

    #[tokio::test]
    async fn damaged_files_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalObjects::open(dir.path()).unwrap();
        let key = store.put(b"original".to_vec()).await.unwrap();
        std::fs::write(dir.path().join(key.as_str()), b"tampered").unwrap();
        assert!(matches!(store.get(&key).await, Err(StoreError::Damaged { .. })));
    }
}
