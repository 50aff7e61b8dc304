//! S3 object store (`aws-sdk-s3`, rustls): content-addressed puts (multipart above
//! [`MULTIPART_THRESHOLD`]), streaming reads into files, prefix listing, deletes and presigned
//! GET URLs. Works with AWS and S3-compatible servers (custom endpoint, path-style).

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use carelens_domain::ObjectKey;
use sha2::{Digest, Sha256};

use crate::{ObjectStore, Result, StoreError};

const BACKEND: &str = "s3";
/// Objects larger than this go up in parts.
pub const MULTIPART_THRESHOLD: usize = 16 * 1024 * 1024;
/// Part size for multipart uploads (S3's minimum is 5 MiB).
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// Where and how to reach the bucket. Credentials come from the standard AWS environment
/// variables; see [`S3Config::from_env`].
#[derive(Clone)]
pub struct S3Config {
    pub bucket: String,
    /// Key prefix inside the bucket (`""` or e.g. `carelens/`).
    pub prefix: String,
    pub endpoint: Option<String>,
    pub region: String,
    pub path_style: bool,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    /// Send request checksums only when an operation requires them (what most S3-compatible
    /// servers support), rather than whenever the SDK can.
    pub checksums_when_required: bool,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("access_key_id", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Environment variables read for S3.
pub mod env {
    pub const AWS_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
    pub const AWS_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
    pub const AWS_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";
    pub const AWS_REGION: &str = "AWS_REGION";
    /// `when_required` (default) or `when_supported`.
    pub const CARELENS_S3_CHECKSUMS: &str = "CARELENS_S3_CHECKSUMS";
}

impl S3Config {
    /// A config for `bucket` with credentials and defaults from the environment.
    pub fn from_env(bucket: &str) -> Result<Self> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let missing = |k: &str| StoreError::Backend {
            backend: BACKEND,
            message: format!("{k} is not set; S3 credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
        };
        Ok(Self {
            bucket: bucket.to_owned(),
            prefix: String::new(),
            endpoint: None,
            region: var(env::AWS_REGION).unwrap_or_else(|| "us-east-1".into()),
            path_style: false,
            access_key_id: var(env::AWS_ACCESS_KEY_ID).ok_or_else(|| missing(env::AWS_ACCESS_KEY_ID))?,
            secret_access_key: var(env::AWS_SECRET_ACCESS_KEY).ok_or_else(|| missing(env::AWS_SECRET_ACCESS_KEY))?,
            session_token: var(env::AWS_SESSION_TOKEN),
            checksums_when_required: var(env::CARELENS_S3_CHECKSUMS).as_deref() != Some("when_supported"),
        })
    }

    /// `bucket` on a self-hosted S3-compatible server at `endpoint` (s3s-fs, MinIO, Ceph):
    /// path-style addressing, region `us-east-1`, checksums only where required, no prefix.
    pub fn s3_compatible(endpoint: &str, bucket: &str, access_key_id: &str, secret_access_key: &str) -> Self {
        Self {
            bucket: bucket.to_owned(),
            prefix: String::new(),
            endpoint: Some(endpoint.to_owned()),
            region: "us-east-1".into(),
            path_style: true,
            access_key_id: access_key_id.to_owned(),
            secret_access_key: secret_access_key.to_owned(),
            session_token: None,
            checksums_when_required: true,
        }
    }
}

/// An S3 bucket as an object store.
#[derive(Clone)]
pub struct S3Objects {
    client: Client,
    bucket: String,
    prefix: String,
    location: String,
}

impl std::fmt::Debug for S3Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Objects").field("location", &self.location).finish()
    }
}

fn status<E, R: HasStatus>(e: &SdkError<E, R>) -> Option<u16> {
    e.raw_response().map(HasStatus::status_code)
}

trait HasStatus {
    fn status_code(&self) -> u16;
}

impl HasStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

impl S3Objects {
    /// Connects and checks that the bucket exists and the credentials work.
    pub async fn connect(cfg: S3Config) -> Result<Self> {
        let location = match &cfg.endpoint {
            Some(ep) => format!("s3://{}/{} at {ep}", cfg.bucket, cfg.prefix),
            None => format!("s3://{}/{}", cfg.bucket, cfg.prefix),
        };
        let creds = Credentials::new(
            cfg.access_key_id.clone(),
            cfg.secret_access_key.clone(),
            cfg.session_token.clone(),
            None,
            "carelens-env",
        );
        let (req, resp) = if cfg.checksums_when_required {
            (RequestChecksumCalculation::WhenRequired, ResponseChecksumValidation::WhenRequired)
        } else {
            (RequestChecksumCalculation::WhenSupported, ResponseChecksumValidation::WhenSupported)
        };
        let mut builder = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(cfg.region.clone()))
            .credentials_provider(creds)
            .force_path_style(cfg.path_style)
            .request_checksum_calculation(req)
            .response_checksum_validation(resp);
        if let Some(ep) = &cfg.endpoint {
            builder = builder.endpoint_url(ep.clone());
        }
        let client = Client::from_conf(builder.build());
        let store = Self { client, bucket: cfg.bucket.clone(), prefix: cfg.prefix.clone(), location };
        if let Err(e) = store.client.head_bucket().bucket(&store.bucket).send().await {
            let message = match status(&e) {
                Some(404) => format!("bucket `{}` does not exist ({}); create it first", store.bucket, store.location),
                Some(401 | 403) => {
                    format!("access to {} denied; check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", store.location)
                }
                Some(code) => format!("{} answered HTTP {code}: {}", store.location, DisplayErrorContext(&e)),
                None => format!("cannot reach {} (check the endpoint): {}", store.location, DisplayErrorContext(&e)),
            };
            return Err(StoreError::Backend { backend: BACKEND, message });
        }
        Ok(store)
    }

    fn full_key(&self, key: &ObjectKey) -> String {
        format!("{}{}", self.prefix, key.as_str())
    }

    fn fail<E: std::error::Error + 'static, R: std::fmt::Debug>(&self, what: &str, e: SdkError<E, R>) -> StoreError {
        StoreError::Backend {
            backend: BACKEND,
            message: format!("{what} in {}: {}", self.location, DisplayErrorContext(&e)),
        }
    }

    async fn put_multipart(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.fail("starting multipart upload", e))?;
        let upload_id = created.upload_id().unwrap_or_default().to_owned();
        let mut parts = Vec::new();
        for (i, chunk) in bytes.chunks(PART_SIZE).enumerate() {
            let number = i as i32 + 1;
            let sent = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(&upload_id)
                .part_number(number)
                .body(ByteStream::from(chunk.to_vec()))
                .send()
                .await;
            match sent {
                Ok(out) => parts.push(
                    CompletedPart::builder().set_e_tag(out.e_tag().map(str::to_owned)).part_number(number).build(),
                ),
                Err(e) => {
                    let _ = self
                        .client
                        .abort_multipart_upload()
                        .bucket(&self.bucket)
                        .key(key)
                        .upload_id(&upload_id)
                        .send()
                        .await;
                    return Err(self.fail("uploading a part", e));
                }
            }
        }
        let done = CompletedMultipartUpload::builder().set_parts(Some(parts)).build();
        if let Err(e) = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(&upload_id)
            .multipart_upload(done)
            .send()
            .await
        {
            let _ =
                self.client.abort_multipart_upload().bucket(&self.bucket).key(key).upload_id(&upload_id).send().await;
            return Err(self.fail("completing multipart upload", e));
        }
        Ok(())
    }

    fn expected_digest(key: &ObjectKey) -> Option<&str> {
        key.as_str().strip_prefix("sha256/").and_then(|r| r.rsplit('/').next())
    }
}

#[async_trait]
impl ObjectStore for S3Objects {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn put(&self, bytes: Vec<u8>) -> Result<ObjectKey> {
        let digest = hex::encode(Sha256::digest(&bytes));
        let key = ObjectKey::for_sha256(&digest)
            .map_err(|e| StoreError::Backend { backend: BACKEND, message: e.to_string() })?;
        if self.exists(&key).await? {
            return Ok(key);
        }
        let full = self.full_key(&key);
        if bytes.len() > MULTIPART_THRESHOLD {
            self.put_multipart(&full, &bytes).await?;
        } else {
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(&full)
                .body(ByteStream::from(bytes))
                .send()
                .await
                .map_err(|e| self.fail("writing object", e))?;
        }
        Ok(key)
    }

    async fn get(&self, key: &ObjectKey) -> Result<Vec<u8>> {
        let out = match self.client.get_object().bucket(&self.bucket).key(self.full_key(key)).send().await {
            Ok(o) => o,
            Err(e) if status(&e) == Some(404) => {
                return Err(StoreError::NotFound { entity: "object", id: key.to_string() });
            }
            Err(e) => return Err(self.fail("reading object", e)),
        };
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| StoreError::Backend { backend: BACKEND, message: format!("reading object {key}: {e}") })?
            .into_bytes()
            .to_vec();
        if let Some(expected) = Self::expected_digest(key)
            && hex::encode(Sha256::digest(&bytes)) != expected
        {
            return Err(StoreError::Damaged { key: key.to_string() });
        }
        Ok(bytes)
    }

    async fn copy_to(&self, key: &ObjectKey, dest: &Path) -> Result<u64> {
        let mut out = match self.client.get_object().bucket(&self.bucket).key(self.full_key(key)).send().await {
            Ok(o) => o,
            Err(e) if status(&e) == Some(404) => {
                return Err(StoreError::NotFound { entity: "object", id: key.to_string() });
            }
            Err(e) => return Err(self.fail("reading object", e)),
        };
        let io = |source| StoreError::Io { path: dest.to_path_buf(), source };
        let mut file = std::fs::File::create(dest).map_err(io)?;
        let mut hasher = Sha256::new();
        let mut written = 0u64;
        while let Some(chunk) = out
            .body
            .try_next()
            .await
            .map_err(|e| StoreError::Backend { backend: BACKEND, message: format!("reading object {key}: {e}") })?
        {
            hasher.update(&chunk);
            file.write_all(&chunk).map_err(io)?;
            written += chunk.len() as u64;
        }
        file.sync_all().map_err(io)?;
        if let Some(expected) = Self::expected_digest(key)
            && hex::encode(hasher.finalize()) != expected
        {
            let _ = std::fs::remove_file(dest);
            return Err(StoreError::Damaged { key: key.to_string() });
        }
        Ok(written)
    }

    async fn exists(&self, key: &ObjectKey) -> Result<bool> {
        match self.client.head_object().bucket(&self.bucket).key(self.full_key(key)).send().await {
            Ok(_) => Ok(true),
            Err(e) if status(&e) == Some(404) => Ok(false),
            Err(e) => Err(self.fail("checking object", e)),
        }
    }

    async fn delete(&self, key: &ObjectKey) -> Result<()> {
        match self.client.delete_object().bucket(&self.bucket).key(self.full_key(key)).send().await {
            Ok(_) => Ok(()),
            Err(e) if status(&e) == Some(404) => Ok(()),
            Err(e) => Err(self.fail("deleting object", e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectKey>> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(format!("{}{prefix}", self.prefix))
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| self.fail("listing objects", e))?;
            for obj in page.contents() {
                if let Some(k) = obj.key().and_then(|k| k.strip_prefix(&self.prefix))
                    && let Ok(key) = k.parse::<ObjectKey>()
                {
                    out.push(key);
                }
            }
            token = page.next_continuation_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        out.sort();
        Ok(out)
    }

    async fn presigned_get(&self, key: &ObjectKey, expires: Duration) -> Result<Option<String>> {
        let cfg = aws_sdk_s3::presigning::PresigningConfig::expires_in(expires)
            .map_err(|e| StoreError::Backend { backend: BACKEND, message: format!("presigning: {e}") })?;
        let req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .presigned(cfg)
            .await
            .map_err(|e| self.fail("presigning", e))?;
        Ok(Some(req.uri().to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write as _};
    use std::net::TcpStream;

    use carelens_testkit::S3Server;

    use super::*;
    use crate::conformance;

    fn config(server: &S3Server, bucket: &str) -> S3Config {
        S3Config::s3_compatible(&server.endpoint(), bucket, &server.access_key, &server.secret_key)
    }

    /// A plain HTTP GET without credentials; returns (status, body).
    fn http_get(url: &str) -> (u16, Vec<u8>) {
        let rest = url.strip_prefix("http://").unwrap();
        let (host, path) = rest.split_at(rest.find('/').unwrap());
        let mut stream = TcpStream::connect(host).unwrap();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        (status, raw[split + 4..].to_vec())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s3_passes_the_object_conformance_suite() {
        let Some(server) = S3Server::start() else { return };
        eprintln!("S3 server {}", server.version);
        server.create_bucket("conformance");
        let store = S3Objects::connect(config(&server, "conformance")).await.unwrap();
        conformance::run_object_suite(&store).await;

        let key = store.put(b"an x-ray, say".to_vec()).await.unwrap();
        let url = store.presigned_get(&key, Duration::from_secs(60)).await.unwrap().unwrap();
        assert_eq!(http_get(&url), (200, b"an x-ray, say".to_vec()), "presigned GET without credentials");
        let mut tampered = url.clone();
        tampered.push('0');
        assert_ne!(http_get(&tampered).0, 200, "a tampered signature must be refused");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bad_settings_are_named() {
        let Some(server) = S3Server::start() else { return };
        server.create_bucket("present");
        let err = S3Objects::connect(config(&server, "absent")).await.unwrap_err().to_string();
        assert!(err.contains("bucket `absent` does not exist"), "{err}");
        let mut wrong = config(&server, "present");
        wrong.secret_access_key = "not-the-secret".into();
        let err = S3Objects::connect(wrong).await.unwrap_err().to_string();
        assert!(err.contains("denied; check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"), "{err}");
        assert!(!err.contains("not-the-secret"), "secrets never reach messages");
        let mut nowhere = config(&server, "present");
        nowhere.endpoint = Some(format!("http://127.0.0.1:{}", carelens_testkit::free_port()));
        let err = S3Objects::connect(nowhere).await.unwrap_err().to_string();
        assert!(err.contains("cannot reach"), "{err}");
    }
}
