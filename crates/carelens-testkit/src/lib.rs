//! Real servers for tests: `mongod` (single-node replica set, so transactions work) and
//! `s3s-fs` (an S3 server over a directory with real signature checks), each on 127.0.0.1
//! with a random free port and a throwaway data directory, stopped when dropped.
//!
//! `cargo xtask test` installs both binaries (cached outside the clone) and exports their
//! paths in [`MONGOD_BIN`] and [`S3S_FS_BIN`], plus [`REQUIRE_SERVERS`] = 1 so that a server
//! that cannot start fails the test instead of skipping it. A bare `cargo test` without the
//! variables prints what it skipped.

#![allow(clippy::unwrap_used)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mongodb::bson::doc;

/// Path of the `mongod` binary.
pub const MONGOD_BIN: &str = "CARELENS_MONGOD_BIN";
/// Path of the `s3s-fs` binary.
pub const S3S_FS_BIN: &str = "CARELENS_S3S_FS_BIN";
/// `1`: a missing server is a test failure, not a skip.
pub const REQUIRE_SERVERS: &str = "CARELENS_REQUIRE_SERVERS";

/// The binary named by `var`, or `None` after printing why the test is skipped. Panics when
/// servers are required.
pub fn binary(var: &str, what: &str) -> Option<PathBuf> {
    match std::env::var_os(var).map(PathBuf::from) {
        Some(p) if p.is_file() => Some(p),
        other => {
            let why = match other {
                Some(p) => format!("{var}={} is not a file", p.display()),
                None => format!("{var} is not set"),
            };
            if std::env::var(REQUIRE_SERVERS).as_deref() == Ok("1") {
                panic!("{what} is required but unavailable: {why}");
            }
            eprintln!("SKIPPED: {what} tests need a real server ({why}); `cargo xtask test` installs and starts one");
            None
        }
    }
}

/// The Synthea R4 bundles from the shared datasets (`CARELENS_SHARED_DATASETS`), unpacked into
/// `into`, sorted by path; `None` (after saying so) when the datasets are not there.
pub fn synthea_bundles(into: &Path) -> Option<Vec<PathBuf>> {
    let Some(shared) = std::env::var_os("CARELENS_SHARED_DATASETS") else {
        eprintln!(
            "SKIPPED: Synthea tests need CARELENS_SHARED_DATASETS (cargo xtask test sets it to ../shared/datasets)"
        );
        return None;
    };
    let tarball = Path::new(&shared).join("synthea/synthea_r4_bundles.tar.gz");
    assert!(tarball.is_file(), "{} is missing", tarball.display());
    let status = Command::new("tar").arg("xzf").arg(&tarball).arg("-C").arg(into).status().unwrap();
    assert!(status.success(), "tar failed on {}", tarball.display());
    let mut files = Vec::new();
    let mut stack = vec![into.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "json") {
                files.push(p);
            }
        }
    }
    files.sort();
    Some(files)
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for_port(port: u16, child: &mut Child, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            let tail = std::fs::read_to_string(log).unwrap_or_default();
            let tail: String =
                tail.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
            panic!("{what} exited with {status} before listening on {port}:\n{tail}");
        }
        assert!(Instant::now() < deadline, "{what} did not listen on port {port} within 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A throwaway `mongod`.
pub struct MongoServer {
    child: Option<Child>,
    bin: PathBuf,
    dir: tempfile::TempDir,
    pub port: u16,
    pub version: String,
    /// `(user, password)` of the root user when started with [`MongoServer::start_with_auth`].
    pub credentials: Option<(String, String)>,
}

impl MongoServer {
    /// Starts a fresh server, or returns `None` (after saying why) when none is available.
    pub async fn start() -> Option<Self> {
        let bin = binary(MONGOD_BIN, "MongoDB")?;
        let dir = tempfile::tempdir().unwrap();
        let mut server = Self { child: None, bin, dir, port: free_port(), version: String::new(), credentials: None };
        server.spawn().await;
        Some(server)
    }

    /// Starts a server that requires authentication, with one root user.
    pub async fn start_with_auth(user: &str, password: &str) -> Option<Self> {
        let bin = binary(MONGOD_BIN, "MongoDB")?;
        let dir = tempfile::tempdir().unwrap();
        // Replica sets with access control need a key file (owner-only permissions).
        let key = dir.path().join("keyfile");
        std::fs::write(&key, format!("carelensTestKey{}x{}", std::process::id(), free_port())).unwrap();
        std::process::Command::new("chmod").arg("600").arg(&key).status().unwrap();
        let mut server = Self {
            child: None,
            bin,
            dir,
            port: free_port(),
            version: String::new(),
            credentials: Some((user.to_owned(), password.to_owned())),
        };
        server.spawn().await;
        Some(server)
    }

    async fn spawn(&mut self) {
        let data = self.dir.path().join("db");
        std::fs::create_dir_all(&data).unwrap();
        let log = self.dir.path().join("mongod.log");
        let mut child = Command::new(&self.bin)
            .args(["--port", &self.port.to_string(), "--bind_ip", "127.0.0.1", "--replSet", "rs0"])
            .arg("--dbpath")
            .arg(&data)
            .arg("--logpath")
            .arg(&log)
            .args(["--wiredTigerCacheSizeGB", "0.25"])
            .args(["--wiredTigerEngineConfigString", "log=(file_max=10MB,prealloc=false)"])
            .args(["--setParameter", "diagnosticDataCollectionEnabled=false"])
            .args(if self.credentials.is_some() {
                vec!["--auth".to_owned(), "--keyFile".to_owned(), self.dir.path().join("keyfile").display().to_string()]
            } else {
                vec![]
            })
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));
        wait_for_port(self.port, &mut child, "mongod", &log);
        self.child = Some(child);
        self.initiate().await;
    }

    /// Initiates the replica set (once) and waits until this node is primary.
    async fn initiate(&mut self) {
        let direct = format!("mongodb://127.0.0.1:{}/?directConnection=true", self.port);
        let mut client = mongodb::Client::with_uri_str(&direct).await.unwrap();
        let mut admin = client.database("admin");
        let config = doc! { "_id": "rs0", "members": [{ "_id": 0, "host": format!("127.0.0.1:{}", self.port) }] };
        if let Err(e) = admin.run_command(doc! { "replSetInitiate": config }).await {
            // 23 = AlreadyInitialized (a restart keeps its config).
            let text = e.to_string();
            assert!(
                text.contains("already initialized") || text.contains("AlreadyInitialized"),
                "replSetInitiate: {e}"
            );
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let hello = admin.run_command(doc! { "hello": 1 }).await.unwrap();
            if hello.get_bool("isWritablePrimary").unwrap_or(false) {
                break;
            }
            assert!(Instant::now() < deadline, "mongod did not become primary within 60 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if let Some((user, password)) = self.credentials.clone() {
            // The localhost exception allows creating the first user; later restarts log in.
            let created = admin
                .run_command(
                    doc! { "createUser": &user, "pwd": &password, "roles": [{ "role": "root", "db": "admin" }] },
                )
                .await;
            if let Err(e) = created {
                let text = e.to_string();
                assert!(text.contains("already exists") || text.contains("requires authentication"), "createUser: {e}");
            }
            let authed = format!("mongodb://{user}:{password}@127.0.0.1:{}/?directConnection=true", self.port);
            client = mongodb::Client::with_uri_str(&authed).await.unwrap();
            admin = client.database("admin");
        }
        let info = admin.run_command(doc! { "buildInfo": 1 }).await.unwrap();
        self.version = info.get_str("version").unwrap_or("unknown").to_owned();
    }

    /// A connection URL for database `db` (with the credentials, if any).
    pub fn url(&self, db: &str) -> String {
        match &self.credentials {
            Some((u, p)) => format!("mongodb://{u}:{p}@127.0.0.1:{}/{db}?replicaSet=rs0&authSource=admin", self.port),
            None => format!("mongodb://127.0.0.1:{}/{db}?replicaSet=rs0", self.port),
        }
    }

    /// Kills the server abruptly (SIGKILL), keeping its data.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the killed server again on the same port and data.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }
}

impl Drop for MongoServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A throwaway `s3s-fs` S3 server.
pub struct S3Server {
    child: Option<Child>,
    root: tempfile::TempDir,
    pub port: u16,
    pub access_key: String,
    pub secret_key: String,
    pub version: String,
}

impl S3Server {
    pub fn start() -> Option<Self> {
        let bin = binary(S3S_FS_BIN, "S3")?;
        let root = tempfile::tempdir().unwrap();
        let port = free_port();
        let access_key = format!("carelens{port}");
        let secret_key = format!("secret-{port}-{}", std::process::id());
        let log = root.path().join("s3s-fs.log");
        let data = root.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let log_file = std::fs::File::create(&log).unwrap();
        let mut child = Command::new(&bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", &access_key, "--secret-key", &secret_key])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        wait_for_port(port, &mut child, "s3s-fs", &log);
        let version = Command::new(&bin)
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        Some(Self { child: Some(child), root, port, access_key, secret_key, version })
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Where s3s-fs keeps the objects (`<dir>/<bucket>/<key>`), for tests that tamper with them.
    pub fn data_dir(&self) -> std::path::PathBuf {
        self.root.path().join("data")
    }

    /// Creates a bucket (a directory, for s3s-fs).
    pub fn create_bucket(&self, name: &str) {
        std::fs::create_dir_all(self.root.path().join("data").join(name)).unwrap();
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
