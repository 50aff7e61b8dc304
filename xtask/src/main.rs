//! Project tasks: `cargo xtask <task>`.
//!
//! - `test`: install the MongoDB and S3 servers (cached), build the `carelens` binary, then run
//!   the whole test suite (what the README and `.ci/run` call).
//! - `ci`: formatting, clippy, dependency-boundary checks, then `test`, all with a `cmake`
//!   on PATH that fails when called (the main command must build without CMake).
//! - `front-door`: the README's main command's release build under the same rule.
//! - `bench-store [PATIENTS] [OBJECTS]`: history inserts/s and 1 MB object puts/s, embedded vs
//!   MongoDB + S3, side by side.
//! - `bench-ml [SECONDS]`: image-network training/inference images/s (burn flex and ndarray vs
//!   PyTorch CPU, same architecture) and tabular 10-fold fit times on WDBC (linfa vs
//!   scikit-learn), with AUROCs and ratios. Installs torch + scikit-learn into a venv (~6 GB).
//! - `bench-serve [SECONDS]`: prediction-set reads over HTTP under 32 concurrent connections
//!   (requests/s, p50/p99), carelens vs a Flask peer (gunicorn) on the same store and JSON.
//! - `bench-booking [SECONDS] [PROVIDERS] [OPENINGS_PER_PROVIDER]`: provider search p50/p99
//!   and bookings/s over HTTP for 10 000 providers and 1 M openings, embedded and MongoDB.
//! - `bench-kpi [N]`: a synthetic population of N patients (default 1 000 000) as an analytics
//!   snapshot, then the whole KPI catalogue timed, beside six KPIs written in pandas.
//! - `bench-generate [N]`: release build, then time population generation (N patients,
//!   default 100 000): generation alone vs generation + SQLite writes, 1 thread vs all.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

mod bench_serve;
mod servers;

fn main() -> std::process::ExitCode {
    match real_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let task = args.next().unwrap_or_default();
    let root = workspace_root();
    std::env::set_current_dir(&root)?;
    match task.as_str() {
        "test" => test(&root),
        "ci" => ci(&root),
        "bench-store" => bench_store(args.collect()),
        "front-door" => front_door(),
        "fuzz" => fuzz(&root, args.next().map(|n| n.parse()).transpose()?.unwrap_or(600)),
        "bench-imaging" => bench_imaging(&root, args.next().map(|n| n.parse()).transpose()?.unwrap_or(10.0)),
        "fixtures" => {
            // For running tests by hand: `export $(cargo xtask fixtures)`.
            println!("CARELENS_PYDICOM_DIR={}", servers::pydicom_files(&root)?.display());
            println!("CARELENS_WDBC_CSV={}", servers::wdbc_csv()?.display());
            println!("CARELENS_FHIR_SCHEMA={}", servers::fhir_schema()?.display());
            let installed = servers::install()?;
            println!("CARELENS_MONGOD_BIN={}", installed.mongod.display());
            println!("CARELENS_S3S_FS_BIN={}", installed.s3s_fs.display());
            Ok(())
        }
        "bench-ml" => bench_ml(&root, args.next().map(|n| n.parse()).transpose()?.unwrap_or(10.0)),
        "bench-serve" => bench_serve::run(
            &root,
            &target_dir()?,
            bench_python,
            args.next().map(|n| n.parse()).transpose()?.unwrap_or(10.0),
        ),
        "bench-generate" => bench_generate(&root, args.next().map(|n| n.parse()).transpose()?.unwrap_or(100_000)),
        "bench-booking" => bench_booking(args.collect()),
        "bench-kpi" => bench_kpi(&root, args.next().map(|n| n.parse()).transpose()?.unwrap_or(1_000_000)),
        _ => {
            eprintln!(
                "usage: cargo xtask <test | ci | fixtures | fuzz [SECONDS] | bench-imaging | bench-ml [SECONDS] | bench-generate [PATIENTS] | bench-kpi [PATIENTS] | bench-store [PATIENTS] [OBJECTS] | bench-serve [SECONDS] | bench-booking [SECONDS] [PROVIDERS] [OPENINGS_PER_PROVIDER]>"
            );
            bail!("unknown task `{task}`")
        }
    }
}

/// The checkout this invocation belongs to. Read at run time (cargo sets CARGO_MANIFEST_DIR
/// for `cargo run`), never baked in with `env!`: a persistent target dir shared by several
/// clones may hand us an xtask binary built from another checkout.
fn workspace_root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Set by [`shim_cmake`]: a PATH whose first entry holds a `cmake` that fails when called.
static NO_CMAKE_PATH: std::sync::OnceLock<(std::ffi::OsString, PathBuf)> = std::sync::OnceLock::new();

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    if let Some((path, _)) = NO_CMAKE_PATH.get() {
        cmd.env("PATH", path).env_remove("CMAKE").env_remove("AWS_LC_SYS_CMAKE_BUILDER");
    }
    cmd
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd.status().with_context(|| format!("could not start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("could not start {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8(out.stdout)?)
}

fn target_dir() -> Result<PathBuf> {
    let meta = output(cargo().args(["metadata", "--format-version", "1", "--no-deps"]))?;
    let v: serde_json::Value = serde_json::from_str(&meta)?;
    v["target_directory"].as_str().map(PathBuf::from).context("cargo metadata has no target_directory")
}

fn has_nextest() -> bool {
    cargo().args(["nextest", "--version"]).output().is_ok_and(|o| o.status.success())
}

/// The whole test suite. Builds the binary the end-to-end tests drive, points them at the
/// shared datasets when present, and runs every test in the workspace.
fn test(root: &Path) -> Result<()> {
    run(cargo().args(["build", "--locked", "-p", "carelens-cli", "--bin", "carelens"]))?;
    let bin = target_dir()?.join("debug").join(format!("carelens{}", std::env::consts::EXE_SUFFIX));
    let mut cmd = cargo();
    if has_nextest() {
        cmd.args(["nextest", "run", "--workspace", "--locked", "--no-fail-fast"]);
    } else {
        eprintln!("xtask: cargo-nextest not found, using cargo test");
        cmd.args(["test", "--workspace", "--locked", "--no-fail-fast"]);
    }
    cmd.env("CARELENS_BIN", &bin);
    // Real MongoDB and S3 servers: tests start their own instances from these binaries, and
    // fail (rather than skip) when they cannot.
    let installed = servers::install()?;
    servers::install_browser()?;
    cmd.env("CARELENS_MONGOD_BIN", &installed.mongod)
        .env("CARELENS_S3S_FS_BIN", &installed.s3s_fs)
        .env("CARELENS_REQUIRE_SERVERS", "1");
    cmd.env("CARELENS_PYDICOM_DIR", servers::pydicom_files(root)?);
    cmd.env("CARELENS_WDBC_CSV", servers::wdbc_csv()?);
    cmd.env("CARELENS_NOTEBOOK_PYTHON", venv_python("notebook-venv", NOTEBOOK_PACKAGES)?);
    // Apache Spark in local mode runs two KPIs' SQL on the same snapshot (needs Java 17+).
    cmd.env("CARELENS_SPARK_PYTHON", venv_python("spark-venv", &["pyspark==4.3.0"])?);
    // A real SMTP server (aiosmtpd) receives booking reminders; icalendar checks their .ics.
    cmd.env("CARELENS_MAIL_PYTHON", venv_python("mail-venv", &["aiosmtpd==1.4.6", "icalendar==6.3.2"])?);
    // Exported FHIR bundles are checked against the official R4 JSON schema with jsonschema.
    cmd.env("CARELENS_FHIR_SCHEMA", servers::fhir_schema()?);
    cmd.env("CARELENS_FHIR_PYTHON", venv_python("fhir-venv", &["jsonschema==4.23.0"])?);
    if std::env::var_os("CARELENS_SHARED_DATASETS").is_none() {
        let shared = root.join("../shared/datasets");
        if shared.is_dir() {
            cmd.env("CARELENS_SHARED_DATASETS", shared.canonicalize()?);
        } else {
            eprintln!("xtask: ../shared/datasets not found; tests that need shared data will say so");
        }
    }
    run(&mut cmd)
}

/// Crates allowed to depend on each backend library (ARCHITECTURE.md invariants).
const BOUNDARIES: &[(&str, &[&str])] = &[
    ("rusqlite", &["carelens-store"]),
    // The test kit starts mongod and needs the driver to initiate the replica set.
    ("mongodb", &["carelens-store", "carelens-testkit"]),
    ("aws-sdk-s3", &["carelens-store"]),
    // Only the server knows HTTP types; everyone else stays callable without a web stack.
    ("axum", &["carelens-server"]),
    ("utoipa", &["carelens-server"]),
    ("utoipa-axum", &["carelens-server"]),
    // Only the notify crate speaks SMTP.
    ("lettre", &["carelens-notify"]),
    // Only the records crate signs and verifies (audit checkpoints, documents, prescriptions).
    ("ed25519-dalek", &["carelens-records"]),
];

/// Each backend library may be a direct (normal or build) dependency of the named crates only;
/// everyone else reaches it through their traits. Dev-dependencies are exempt: a test may open
/// a store file to corrupt it.
/// Crates that do no IO: no path to any backend library at all.
const PURE: &[&str] = &[
    "carelens-domain",
    "carelens-synth",
    "carelens-imaging",
    "carelens-phantom",
    "carelens-ml",
    "carelens-features",
    "carelens-analytics",
    "carelens-booking",
];

fn check_boundaries() -> Result<()> {
    let meta = output(cargo().args(["metadata", "--format-version", "1", "--no-deps"]))?;
    let v: serde_json::Value = serde_json::from_str(&meta)?;
    let mut violations = Vec::new();
    for package in v["packages"].as_array().context("cargo metadata has no packages")? {
        let name = package["name"].as_str().unwrap_or_default();
        for dep in package["dependencies"].as_array().into_iter().flatten() {
            let dep_name = dep["name"].as_str().unwrap_or_default();
            if dep["kind"].as_str() == Some("dev") {
                continue;
            }
            for (lib, allowed) in BOUNDARIES {
                if dep_name == *lib && !allowed.contains(&name) {
                    violations.push(format!("{name} depends on {lib} (only {allowed:?} may)"));
                }
            }
        }
    }
    // Pure crates may not reach a backend library even transitively.
    for pure in PURE {
        for (lib, _) in BOUNDARIES {
            let tree = cargo()
                .args(["tree", "--locked", "-e", "normal,build", "-p", pure, "-i", lib])
                .output()
                .context("cargo tree")?;
            if tree.status.success() && !String::from_utf8_lossy(&tree.stdout).trim().is_empty() {
                violations.push(format!("{pure} reaches {lib} (`cargo tree -p {pure} -i {lib}`); it must do no IO"));
            }
        }
    }
    if !violations.is_empty() {
        bail!("dependency boundaries broken:\n  {}", violations.join("\n  "));
    }
    eprintln!("xtask: dependency boundaries hold ({} libraries, {} pure crates)", BOUNDARIES.len(), PURE.len());
    Ok(())
}

/// CI builds everything (the README's main command's binary, `carelens`, included) with a
/// `cmake` first on PATH that fails when called; see [`shim_cmake`].
fn ci(root: &Path) -> Result<()> {
    shim_cmake()?;
    no_route_to_cmake()?;
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().args(["clippy", "--workspace", "--all-targets", "--locked", "--", "-D", "warnings"]))?;
    check_boundaries()?;
    test(root)?;
    cmake_was_not_called()
}

/// `cargo xtask front-door`: the README's main command as written (release), without cmake.
fn front_door() -> Result<()> {
    shim_cmake()?;
    no_route_to_cmake()?;
    run(cargo().args(["build", "--locked", "--release", "-p", "carelens-cli", "--bin", "carelens"]))
        .context("the README's main command does not build without cmake")?;
    cmake_was_not_called()
}

/// Build scripts of the main command's build graph that may reach the `cmake` crate, and why
/// they never call it on the platforms we build for.
const CMAKE_ALLOWED: &[(&str, &str)] =
    &[("aws-lc-sys", "builds with the `cc` crate on Linux and macOS; cmake only for FIPS or no-asm builds")];

/// Refuses any new route to the `cmake` crate in the `carelens` binary's build graph.
fn no_route_to_cmake() -> Result<()> {
    let tree = output(cargo().args([
        "tree",
        "--locked",
        "-p",
        "carelens-cli",
        "-e",
        "normal,build",
        "-i",
        "cmake",
        "--depth",
        "1",
        "--prefix",
        "none",
    ]))
    .unwrap_or_default();
    for line in tree.lines().skip(1) {
        let name = line.split_whitespace().next().unwrap_or_default();
        if !name.is_empty() && !CMAKE_ALLOWED.iter().any(|(n, _)| *n == name) {
            bail!(
                "{name} brings the `cmake` crate into the main command's build; the README promises a build \
                 without CMake (see CMAKE_ALLOWED in xtask/src/main.rs and ARCHITECTURE.md's native dependencies)"
            );
        }
    }
    Ok(())
}

/// Puts a `cmake` that fails loudly (and leaves a marker) first on PATH for every cargo this
/// process runs. The target directory is only ever built this way by CI, so cached
/// build-script outputs were made under the same rule.
fn shim_cmake() -> Result<()> {
    let shim = target_dir()?.join("front-door");
    std::fs::create_dir_all(&shim)?;
    let called = shim.join("cmake-was-called");
    let _ = std::fs::remove_file(&called);
    let script = shim.join("cmake");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"front door: a build script called cmake $*; the main command must build without it\" >&2\ntouch '{}'\nexit 127\n",
            called.display()
        ),
    )?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    }
    let path = std::env::join_paths(
        std::iter::once(shim).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )?;
    let _ = NO_CMAKE_PATH.set((path, called));
    Ok(())
}

fn cmake_was_not_called() -> Result<()> {
    if let Some((_, called)) = NO_CMAKE_PATH.get()
        && called.exists()
    {
        bail!("a build script called cmake (see the log above); the README's main command must build without it");
    }
    eprintln!("xtask: everything built without cmake (a cmake that fails when called was first on PATH)");
    Ok(())
}

/// Provider search latency and bookings/s over HTTP for 10 000 providers and 1 M openings,
/// embedded and MongoDB (`crates/carelens-server/examples/bench_booking.rs`).
fn bench_booking(args: Vec<String>) -> Result<()> {
    let installed = servers::install()?;
    let mut cmd = cargo();
    cmd.args(["run", "--locked", "--release", "-p", "carelens-server", "--example", "bench_booking", "--"])
        .args(args)
        .env("CARELENS_MONGOD_BIN", &installed.mongod);
    run(&mut cmd)
}

/// History inserts/s and 1 MB object puts/s per backend (embedded vs MongoDB + S3).
fn bench_store(args: Vec<String>) -> Result<()> {
    let installed = servers::install()?;
    servers::install_browser()?;
    let mut cmd = cargo();
    cmd.args(["run", "--locked", "--release", "-p", "carelens-store", "--example", "bench_backends", "--"])
        .args(args)
        .env("CARELENS_MONGOD_BIN", &installed.mongod)
        .env("CARELENS_S3S_FS_BIN", &installed.s3s_fs);
    run(&mut cmd)
}

const PEER_PACKAGES: &[&str] = &[
    "pydicom==3.0.2",
    "numpy==2.4.6",
    "pillow==13.0.0",
    "pylibjpeg==2.1.0",
    "pylibjpeg-openjpeg==2.6.0",
    "pylibjpeg-libjpeg==2.5.0",
    "pylibjpeg-rle==2.2.0",
    "pyjpegls==1.5.1",
];

/// Decode + preprocess benchmark against the Python peer, over the pydicom wheels' files
/// that both decode. Prints files/s on one core and all cores, and the ratios.
fn bench_imaging(root: &Path, seconds: f64) -> Result<()> {
    let fixtures = servers::pydicom_files(root)?;
    let work = target_dir()?.join("bench-imaging");
    std::fs::create_dir_all(&work)?;
    let expected: serde_json::Value = serde_json::from_slice(&std::fs::read(fixtures.join("expected.json"))?)?;
    let all: Vec<String> = expected
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["pixel_data"] == true)
        .filter_map(|e| e["file"].as_str())
        .map(|f| fixtures.join("files").join(f).display().to_string())
        .collect();
    std::fs::write(work.join("all.txt"), all.join("\n"))?;
    let python = bench_python(PEER_PACKAGES)?;
    let peer = root.join("crates/carelens-imaging/benches/python_peer.py");
    let bench = |args: &[&str]| -> Result<String> {
        output(
            cargo().args(["bench", "--locked", "-q", "-p", "carelens-imaging", "--bench", "decode", "--"]).args(args),
        )
    };
    let list = |name: &str| work.join(name).display().to_string();
    std::fs::write(work.join("rust.txt"), bench(&["probe", &list("all.txt")])?)?;
    std::fs::write(
        work.join("both.txt"),
        output(Command::new(&python).arg(&peer).args(["probe", &list("rust.txt")]))?,
    )?;
    let n = std::fs::read_to_string(work.join("both.txt"))?.lines().count();
    eprintln!(
        "xtask: {} files with pixels; carelens decodes {}, both decode {n}",
        all.len(),
        std::fs::read_to_string(work.join("rust.txt"))?.lines().count()
    );
    // Per transfer-syntax group, then all together: codecs differ more than anything else.
    let syntax: std::collections::HashMap<String, String> = expected
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let path = fixtures.join("files").join(e["file"].as_str()?).display().to_string();
            Some((path, e["transfer_syntax"].as_str()?.to_owned()))
        })
        .collect();
    let group_of = |ts: &str| match ts {
        "1.2.840.10008.1.2" | "1.2.840.10008.1.2.1" | "1.2.840.10008.1.2.2" | "1.2.840.10008.1.2.1.99" => {
            "uncompressed"
        }
        "1.2.840.10008.1.2.5" => "RLE",
        "1.2.840.10008.1.2.4.90" | "1.2.840.10008.1.2.4.91" => "JPEG 2000",
        // Our own decoder against CharLS (pyjpegls).
        "1.2.840.10008.1.2.4.80" | "1.2.840.10008.1.2.4.81" => "JPEG-LS",
        _ => "JPEG",
    };
    let both: Vec<String> = std::fs::read_to_string(work.join("both.txt"))?.lines().map(str::to_owned).collect();
    let mut groups: Vec<(&str, Vec<String>)> =
        ["uncompressed", "JPEG", "JPEG-LS", "RLE", "JPEG 2000"].iter().map(|g| (*g, Vec::new())).collect();
    for f in &both {
        let g = group_of(syntax.get(f).map(String::as_str).unwrap_or_default());
        if let Some((_, files)) = groups.iter_mut().find(|(name, _)| *name == g) {
            files.push(f.clone());
        }
    }
    groups.push(("all", both.clone()));
    let secs = seconds.to_string();
    let f = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or(0.0);
    let mut table = vec![format!(
        "decode + preprocess to 224x224 f32, real DICOM files from the pydicom wheels, {seconds} s per measurement, files/s"
    )];
    table.push(format!(
        "{:<16} {:>5} | {:>10} {:>10} {:>6} | {:>10} {:>10} {:>6}",
        "group", "files", "Rust 1c", "Python 1c", "ratio", "Rust all", "Python all", "ratio"
    ));
    for (name, files) in &groups {
        if files.is_empty() {
            continue;
        }
        let list = work.join(format!("group-{}.txt", name.replace([' ', ','], "_")));
        std::fs::write(&list, files.join("\n"))?;
        let list = list.display().to_string();
        let ours: serde_json::Value = serde_json::from_str(bench(&["bench", &list, &secs])?.trim())?;
        let theirs: serde_json::Value =
            serde_json::from_str(output(Command::new(&python).arg(&peer).args(["bench", &list, &secs]))?.trim())?;
        let (r1, p1) = (f(&ours, "one_core_files_per_s"), f(&theirs, "one_core_files_per_s"));
        let (ra, pa) = (f(&ours, "all_cores_files_per_s"), f(&theirs, "all_cores_files_per_s"));
        table.push(format!(
            "{name:<16} {:>5} | {r1:>10.1} {p1:>10.1} {:>5.1}x | {ra:>10.1} {pa:>10.1} {:>5.1}x",
            files.len(),
            r1 / p1.max(1e-9),
            ra / pa.max(1e-9)
        ));
        eprintln!("{}", table.last().map(String::as_str).unwrap_or_default());
    }
    println!("{}", table.join("\n"));
    Ok(())
}

/// The Python environment of the benchmark peers (shared by `bench-imaging` and `bench-ml`).
fn bench_python(packages: &[&str]) -> Result<PathBuf> {
    venv_python("bench-venv", packages)
}

/// The analysts' notebooks run headless in the e2e suite with these (pinned) packages.
pub const NOTEBOOK_PACKAGES: &[&str] =
    &["polars==2.1.0", "matplotlib==3.11.2", "nbclient==0.11.0", "nbformat==5.11.1", "ipykernel==7.4.0"];

/// A Python in a virtual environment beside the target directory, with `packages` installed
/// (idempotent: pip only checks what is already there).
fn venv_python(name: &str, packages: &[&str]) -> Result<PathBuf> {
    let venv = target_dir()?.parent().map_or_else(|| target_dir().unwrap_or_default().join(name), |p| p.join(name));
    let python = venv.join("bin/python");
    if !python.is_file() {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    run(Command::new(&python).args(["-m", "pip", "install", "--quiet"]).args(packages))?;
    Ok(python)
}

/// The KPI catalogue on a snapshot of N synthetic patients, beside the pandas peer.
fn bench_kpi(root: &Path, patients: u64) -> Result<()> {
    let python = bench_python(&["pandas==3.1.1", "pyarrow==26.0.1"])?;
    let dir = target_dir()?.join("bench-kpi-snapshot");
    let out = output(
        cargo()
            .args(["bench", "--locked", "-q", "-p", "carelens-analytics", "--bench", "kpi", "--"])
            .arg(patients.to_string())
            .arg(&dir),
    )?;
    let ours: serde_json::Value = serde_json::from_str(out.trim()).context("the KPI bench's output")?;
    let peer = root.join("crates/carelens-analytics/benches/pandas_peer.py");
    let theirs: serde_json::Value = serde_json::from_str(output(Command::new(&python).arg(&peer).arg(&dir))?.trim())
        .context("the pandas peer's output")?;
    let f = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "KPI benchmark: {} patients, {} history events, {} snapshot rows in {} files ({:.0} MiB), {cores} cores",
        ours["patients"],
        ours["events"],
        ours["rows"],
        ours["files"],
        f(&ours["bytes"]) / 1048576.0
    );
    println!(
        "generate + write the snapshot: {:.1} s (snapshot writing {:.1} s)",
        f(&ours["generate_and_write_seconds"]),
        f(&ours["snapshot_write_seconds"])
    );
    println!(
        "full catalogue ({} KPIs): {:.2} s warm, {:.2} s first run; peak memory {:.0} MiB",
        ours["kpis"].as_array().map_or(0, Vec::len),
        f(&ours["catalogue_seconds"]),
        f(&ours["catalogue_seconds_cold"]),
        f(&ours["peak_rss_mib"])
    );
    println!(
        "\n| KPI | carelens (polars SQL, streaming) | pandas {} | ratio |",
        theirs["pandas"].as_str().unwrap_or("?")
    );
    println!("|---|---|---|---|");
    let (mut sum_ours, mut sum_theirs) = (0.0, 0.0);
    for k in ours["kpis"].as_array().into_iter().flatten() {
        let name = k["name"].as_str().unwrap_or("?");
        let mine = f(&k["seconds"]);
        match theirs["kpis"].get(name).map(f) {
            Some(p) => {
                sum_ours += mine;
                sum_theirs += p;
                println!("| {name} | {mine:.3} s | {p:.3} s | {:.1}× |", p / mine);
            }
            None => println!("| {name} | {mine:.3} s | – | |"),
        }
    }
    println!("| the six in both | {sum_ours:.3} s | {sum_theirs:.3} s | {:.1}× |", sum_theirs / sum_ours);
    println!("pandas peak memory {:.0} MiB", f(&theirs["peak_rss_mib"]));
    Ok(())
}

/// Image network and tabular model benchmarks against PyTorch and scikit-learn.
fn bench_ml(root: &Path, seconds: f64) -> Result<()> {
    let python = bench_python(&["torch==2.15.0", "scikit-learn==1.9.1", "numpy"])?;
    let peer = root.join("crates/carelens-ml/benches/python_peer.py");
    let bench = |args: &[&str]| -> Result<serde_json::Value> {
        let out = output(
            cargo()
                .args(["bench", "--locked", "-q", "-p", "carelens-ml", "--features", "flex,ndarray"])
                .args(["--bench", "throughput", "--"])
                .args(args),
        )?;
        Ok(serde_json::from_str(out.trim())?)
    };
    let py = |args: &[&str]| -> Result<serde_json::Value> {
        Ok(serde_json::from_str(output(Command::new(&python).arg(&peer).args(args))?.trim())?)
    };
    let f = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let secs = seconds.to_string();
    let mut table = vec![format!(
        "image network (77 k parameters, 1x28x28, batch 64 train / 256 inference), {cores} cores, {seconds} s per measurement"
    )];
    table.push(format!("{:<26} {:>12} {:>8} {:>12} {:>8}", "", "train img/s", "vs torch", "infer img/s", "vs torch"));
    let torch = py(&["image", &cores.to_string(), &secs])?;
    let rows = [
        ("burn 0.21 flex".to_owned(), bench(&["image", "flex", &secs])?),
        ("burn 0.21 ndarray".to_owned(), bench(&["image", "ndarray", &secs])?),
        (format!("PyTorch {} CPU", torch["torch"].as_str().unwrap_or("?")), torch.clone()),
    ];
    for (name, v) in &rows {
        let (t, i) = (f(v, "train_images_per_s"), f(v, "infer_images_per_s"));
        table.push(format!(
            "{name:<26} {t:>12.0} {:>7.2}x {i:>12.0} {:>7.2}x",
            t / f(&torch, "train_images_per_s"),
            i / f(&torch, "infer_images_per_s")
        ));
        eprintln!("{}", table.last().map(String::as_str).unwrap_or_default());
    }
    let csv = servers::wdbc_csv()?.display().to_string();
    let ours = bench(&["tabular", &csv, "5"])?;
    let theirs = py(&["tabular", &csv, "5"])?;
    table.push(String::new());
    table.push(format!(
        "WDBC, 10-fold stratified CV (10 fits + predictions), median of 5 runs, 1 core; scikit-learn {}",
        theirs["sklearn"].as_str().unwrap_or("?")
    ));
    table.push(format!(
        "{:<12} {:>10} {:>10} {:>8} | {:>10} {:>12}",
        "family", "linfa s", "sklearn s", "speedup", "AUROC ours", "AUROC sklearn"
    ));
    for family in ["logistic", "naive_bayes", "forest"] {
        let (a, b) = (&ours[family], &theirs[family]);
        table.push(format!(
            "{family:<12} {:>10.4} {:>10.4} {:>7.1}x | {:>10.4} {:>12.4}",
            f(a, "cv_seconds"),
            f(b, "cv_seconds"),
            f(b, "cv_seconds") / f(a, "cv_seconds"),
            f(a, "auroc"),
            f(b, "auroc")
        ));
    }
    println!("{}", table.join("\n"));
    Ok(())
}

/// Runs the DICOM ingest fuzz target for `seconds`, seeded with the pydicom wheels' files.
fn fuzz(root: &Path, seconds: u64) -> Result<()> {
    let fixtures = servers::pydicom_files(root)?;
    let corpus = root.join("fuzz/corpus/dicom_ingest");
    std::fs::create_dir_all(&corpus)?;
    let expected: serde_json::Value = serde_json::from_slice(&std::fs::read(fixtures.join("expected.json"))?)?;
    let mut seeds = 0;
    for e in expected.as_array().into_iter().flatten() {
        let (Some(file), None) = (e["file"].as_str(), e.get("pydicom_error")) else { continue };
        let src = fixtures.join("files").join(file);
        // Small seeds keep executions fast; large files add little new structure.
        if std::fs::metadata(&src).is_ok_and(|m| m.len() <= 256 * 1024) {
            std::fs::copy(&src, corpus.join(format!("seed-{seeds:03}")))?;
            seeds += 1;
        }
    }
    eprintln!("xtask: {seeds} seed files in {}", corpus.display());
    let target = target_dir()?.parent().map_or_else(|| root.join("fuzz/target"), |p| p.join("fuzz-target"));
    let mut cmd = cargo();
    cmd.current_dir(root.join("fuzz"))
        .args(["fuzz", "run", "--fuzz-dir", ".", "dicom_ingest", "corpus/dicom_ingest", "--"])
        .arg(format!("-max_total_time={seconds}"))
        .args(["-rss_limit_mb=2048", "-max_len=262144", "-print_final_stats=1"])
        // Only a stable toolchain here: allow the sanitizer flags cargo-fuzz passes.
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_TARGET_DIR", target);
    eprintln!("xtask: running {cmd:?}");
    let status = cmd.status().context("running cargo fuzz (install it with `cargo install cargo-fuzz`)")?;
    if !status.success() {
        bail!("the fuzzer found a crash, a leak or an out-of-memory input: see fuzz/artifacts/dicom_ingest/");
    }
    Ok(())
}

fn bench_generate(root: &Path, patients: u64) -> Result<()> {
    run(cargo().args(["build", "--locked", "--release", "-p", "carelens-cli", "--bin", "carelens"]))?;
    let bin = target_dir()?.join("release").join(format!("carelens{}", std::env::consts::EXE_SUFFIX));
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    let scratch = root.join("target").join("bench-generate");
    let mut rows = Vec::new();
    for t in [1, threads] {
        let dir = scratch.join(format!("t{t}"));
        let _ = std::fs::remove_dir_all(&dir);
        let started = Instant::now();
        let out = output(Command::new(&bin).args([
            "--quiet",
            "--json",
            "--data-dir",
            dir.to_str().context("utf-8 path")?,
            "generate",
            "--patients",
            &patients.to_string(),
            "--seed",
            "7",
            "--threads",
            &t.to_string(),
        ]))?;
        let secs = started.elapsed().as_secs_f64();
        let v: serde_json::Value = serde_json::from_str(&out)?;
        let db = std::fs::metadata(dir.join("carelens.sqlite")).map(|m| m.len()).unwrap_or(0);
        rows.push((
            t,
            secs,
            v["summary"]["hash"].as_str().unwrap_or("").to_owned(),
            v["summary"]["history_entries"].clone(),
            db,
        ));
    }
    println!("generate --patients {patients} --seed 7 (release, {threads} CPUs), wall time incl. SQLite writes:");
    for (t, secs, hash, entries, db) in &rows {
        println!(
            "  threads {t}: {secs:>6.1} s  {:>8.0} patients/s  {entries} history entries  db {:.0} MiB  hash {}",
            patients as f64 / secs,
            *db as f64 / 1048576.0,
            &hash[..16.min(hash.len())]
        );
    }
    if let [(_, one, h1, ..), (_, many, h2, ..)] = rows.as_slice() {
        println!("  speed-up {threads} threads vs 1: {:.2}x; same population: {}", one / many, h1 == h2);
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}
