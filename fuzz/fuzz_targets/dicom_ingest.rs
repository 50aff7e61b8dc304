//! The DICOM half of `carelens ingest`: pre-scan, parse, decode the middle frame, list
//! DICOMDIR entries. Must never panic, and never allocate past libFuzzer's RSS limit
//! (-rss_limit_mb, 2 GiB by default) whatever a few kilobytes of input declare.
#![no_main]

use std::path::Path;

use carelens_imaging::{DicomFile, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Tighter than the defaults so one input cannot legitimately decode to hundreds of MB.
    let limits = Limits { max_dimension: 4096, max_frames: 64, max_decoded_bytes: 64 << 20 };
    if let Ok(file) = DicomFile::open(Path::new("fuzz.dcm"), data, &limits) {
        let _ = file.frame(file.info.frames.max(1) / 2);
        let _ = file.dicomdir_files();
    }
});
