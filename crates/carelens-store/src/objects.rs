use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use carelens_domain::ObjectKey;

use crate::Result;

/// Content-addressed object storage for originals (images, documents) and derived files.
#[async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// Short backend name for messages: `file`, `s3`.
    fn backend(&self) -> &'static str;

    /// Stores `bytes` under `sha256/<aa>/<digest>`; putting the same bytes again is a no-op
    /// that returns the same key.
    async fn put(&self, bytes: Vec<u8>) -> Result<ObjectKey>;

    /// The bytes under `key`; [`crate::StoreError::NotFound`] if absent,
    /// [`crate::StoreError::Damaged`] if they no longer match a content address.
    async fn get(&self, key: &ObjectKey) -> Result<Vec<u8>>;

    async fn exists(&self, key: &ObjectKey) -> Result<bool>;

    /// Removes `key`; removing an absent key is not an error.
    async fn delete(&self, key: &ObjectKey) -> Result<()>;

    /// Streams the object under `key` into the file `dest` (bounded memory), verifying its
    /// content address on the way; returns the number of bytes written.
    async fn copy_to(&self, key: &ObjectKey, dest: &Path) -> Result<u64>;

    /// Keys starting with `prefix`, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectKey>>;

    /// A URL that lets a browser GET the object directly for `expires`, when the backend can
    /// issue one (S3); `None` means "serve it through carelens".
    async fn presigned_get(&self, key: &ObjectKey, expires: Duration) -> Result<Option<String>>;
}
