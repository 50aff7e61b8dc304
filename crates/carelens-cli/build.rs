//! Compiles the committed default models (`models/<name>/v<N>/…` at the workspace root) into
//! the binary, so that `carelens` finds them from any directory (`src/bundled.rs` unpacks
//! them into the data directory's registry).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let models = manifest.join("../../models");
    println!("cargo:rerun-if-changed={}", models.display());
    let mut files = Vec::new();
    if models.is_dir() {
        collect(&models, &models, 0, &mut files);
    } else {
        println!("cargo:warning=no models/ folder beside the workspace: this carelens bundles no default models");
    }
    files.sort();
    let mut out =
        String::from("/// `(path inside the registry, bytes)` of every bundled model file, sorted by path.\n");
    out.push_str("pub const FILES: &[(&str, &[u8])] = &[\n");
    for (rel, abs) in &files {
        writeln!(out, "    ({rel:?}, include_bytes!({:?})),", abs.display().to_string()).expect("write to a String");
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("bundled_models.rs");
    std::fs::write(&dest, out).unwrap_or_else(|e| panic!("cannot write {}: {e}", dest.display()));
}

/// Files at `<name>/v<N>/<file>` (depth 2 below the root); other files (the README) are not models.
fn collect(root: &Path, dir: &Path, depth: usize, out: &mut Vec<(String, PathBuf)>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display())).path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() && depth < 2 && (depth == 0 || name.starts_with('v')) {
            collect(root, &path, depth + 1, out);
        } else if path.is_file() && depth == 2 {
            let rel = path.strip_prefix(root).expect("below the root").to_string_lossy().replace('\\', "/");
            out.push((rel, path.canonicalize().unwrap_or(path)));
        }
    }
}
