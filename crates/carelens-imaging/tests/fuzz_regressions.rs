//! Inputs the fuzz target found that made dicom-rs allocate gigabytes (its reader reserves and
//! zero-fills a declared length before reading). Each must now be refused by the pre-scan,
//! before dicom-rs sees it.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use carelens_imaging::{DicomFile, Limits, scan_dicom};

#[test]
fn inputs_that_once_allocated_gigabytes_are_refused_up_front() {
    // The runner's CARGO_MANIFEST_DIR first: a test binary reused from a build in another
    // checkout (shared CARGO_TARGET_DIR) would otherwise look in that checkout.
    let root = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from);
    let dir = root.join("tests/fuzz-regressions");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.len() < 16 * 1024, "{}: regression inputs stay small", path.display());
        let err = scan_dicom(&path, &bytes, &Limits::DEFAULT).unwrap_err().to_string();
        assert!(["unknown VR", "invalid VR", "declares"].iter().any(|w| err.contains(w)), "{}: {err}", path.display());
        assert!(DicomFile::open(&path, &bytes, &Limits::DEFAULT).is_err());
        n += 1;
    }
    assert!(n >= 3);
}
