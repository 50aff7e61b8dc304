//! Opening stores by URL: the one place that maps a URL to a backend.
//!
//! - `sqlite:///abs/path/carelens.sqlite` or `sqlite://relative/path.sqlite`: the embedded store
//! - `mongodb://[user:pw@]host[:port]/db[?replicaSet=rs0&…]`: MongoDB
//! - `file:///abs/dir` or `file://relative/dir`: local content-addressed objects
//! - `s3://bucket[/prefix]?endpoint=http://127.0.0.1:9000&region=eu-central-1&path_style=true`:
//!   S3 or an S3-compatible server; credentials from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`

use std::sync::Arc;

use crate::mongo::redact_url;
use crate::{LocalObjects, MongoStore, ObjectStore, Result, S3Config, S3Objects, SqliteStore, Store, StoreError};

fn bad(setting: &str, url: &str, why: &str) -> StoreError {
    StoreError::Backend { backend: "config", message: format!("{setting} {}: {why}", redact_url(url)) }
}

fn scheme(url: &str) -> &str {
    url.split_once("://").map_or("", |(s, _)| s)
}

/// Opens the document store named by `url`.
pub async fn open_store(url: &str) -> Result<Arc<dyn Store>> {
    match scheme(url) {
        "sqlite" => {
            let path = &url["sqlite://".len()..];
            if path.is_empty() {
                return Err(bad("store", url, "names no file; use sqlite:///path/to/carelens.sqlite"));
            }
            Ok(Arc::new(SqliteStore::open(path)?))
        }
        "mongodb" => Ok(Arc::new(MongoStore::connect(url).await?)),
        "mongodb+srv" => {
            Err(bad("store", url, "DNS seed lists (mongodb+srv) are not built in; list the hosts with mongodb://"))
        }
        other => Err(bad(
            "store",
            url,
            &format!("unsupported scheme `{other}`; use sqlite:///path/to/carelens.sqlite or mongodb://host/db"),
        )),
    }
}

/// Opens the object store named by `url`.
pub async fn open_objects(url: &str) -> Result<Arc<dyn ObjectStore>> {
    match scheme(url) {
        "file" => {
            let path = &url["file://".len()..];
            if path.is_empty() {
                return Err(bad("objects", url, "names no directory; use file:///path/to/objects"));
            }
            Ok(Arc::new(LocalObjects::open(path)?))
        }
        "s3" => {
            let rest = &url["s3://".len()..];
            let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
            let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
            if bucket.is_empty() {
                return Err(bad("objects", url, "names no bucket; use s3://bucket[/prefix]"));
            }
            let mut cfg = S3Config::from_env(bucket)?;
            cfg.prefix = match prefix.trim_matches('/') {
                "" => String::new(),
                p => format!("{p}/"),
            };
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                match k {
                    "endpoint" => {
                        cfg.endpoint = Some(v.to_owned());
                        // S3-compatible servers are addressed path-style unless told otherwise.
                        cfg.path_style = true;
                    }
                    "region" => cfg.region = v.to_owned(),
                    "path_style" => cfg.path_style = v != "false",
                    "checksums" => cfg.checksums_when_required = v != "when_supported",
                    other => {
                        return Err(bad(
                            "objects",
                            url,
                            &format!("unknown parameter `{other}`; known: endpoint, region, path_style, checksums"),
                        ));
                    }
                }
            }
            Ok(Arc::new(S3Objects::connect(cfg).await?))
        }
        other => Err(bad(
            "objects",
            url,
            &format!("unsupported scheme `{other}`; use file:///path/to/objects or s3://bucket?endpoint=…"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn urls_pick_the_backend_or_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let db = format!("sqlite://{}", dir.path().join("x.sqlite").display());
        assert_eq!(open_store(&db).await.unwrap().backend(), "sqlite");
        let files = format!("file://{}", dir.path().join("objects").display());
        assert_eq!(open_objects(&files).await.unwrap().backend(), "file");
        for (url, expect) in [
            ("postgres://u:pw@h/db", "store postgres://h/db: unsupported scheme `postgres`"),
            ("sqlite://", "names no file"),
            ("mongodb+srv://cluster/db", "mongodb+srv"),
            ("just-a-path", "unsupported scheme ``"),
        ] {
            let err = open_store(url).await.err().unwrap().to_string();
            assert!(err.contains(expect), "{url}: {err}");
            assert!(!err.contains("pw@"), "credentials leaked: {err}");
        }
        for (url, expect) in
            [("ftp://x", "unsupported scheme `ftp`"), ("s3://", "names no bucket"), ("file://", "names no directory")]
        {
            let err = open_objects(url).await.err().unwrap().to_string();
            assert!(err.contains(expect), "{url}: {err}");
        }
    }
}
