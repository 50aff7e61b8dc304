//! Inputs the fuzz target found that made dicom-rs allocate gigabytes (its reader reserves and
//! zero-fills a declared length before reading). Each must now be refused by the pre-scan,
//! before dicom-rs sees it.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use carelens_imaging::{DicomFile, Limits, scan_dicom};

#[test]
fn inputs_that_once_allocated_gigabytes_are_refused_up_front() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
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
