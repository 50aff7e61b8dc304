//! Decode + preprocess to 224 x 224 float tensors, files/s on one core and on all cores, over
//! real DICOM files; `benches/python_peer.py` does the same job with pydicom + numpy +
//! Pillow (+ pylibjpeg/openjpeg/pyjpegls). `cargo xtask bench-imaging` runs both over the
//! files both can decode and prints the comparison.
//!
//!   cargo bench -p carelens-imaging --bench decode -- probe FILELIST
//!   cargo bench -p carelens-imaging --bench decode -- bench FILELIST SECONDS

use std::path::{Path, PathBuf};
use std::time::Instant;

use carelens_imaging::{DicomFile, Intensity, Limits, PreprocessSpec};

fn preprocess(path: &Path, spec: &PreprocessSpec) -> Result<usize, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let file = DicomFile::open(path, &bytes, &Limits::DEFAULT).map_err(|e| e.to_string())?;
    let img = file.frame(file.info.frames.max(1) / 2).map_err(|e| e.to_string())?;
    let t = spec.apply(&img).map_err(|e| e.to_string())?;
    Ok(t.len())
}

fn run(paths: &[PathBuf], spec: &PreprocessSpec, seconds: f64) -> (usize, f64) {
    let start = Instant::now();
    let mut done = 0;
    loop {
        for p in paths {
            let _ = std::hint::black_box(preprocess(p, spec));
            done += 1;
        }
        if start.elapsed().as_secs_f64() >= seconds {
            return (done, start.elapsed().as_secs_f64());
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let (Some(mode), Some(list)) = (args.first(), args.get(1)) else {
        eprintln!("usage: decode (probe FILELIST | bench FILELIST SECONDS); see `cargo xtask bench-imaging`");
        return;
    };
    let files: Vec<PathBuf> = std::fs::read_to_string(list)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(PathBuf::from)
        .collect();
    let spec = PreprocessSpec { intensity: Intensity::Dicom, ..PreprocessSpec::xray(224) };
    if mode == "probe" {
        for f in &files {
            if preprocess(f, &spec).is_ok() {
                println!("{}", f.display());
            }
        }
        return;
    }
    let seconds: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10.0);
    let (n, t) = run(&files, &spec, seconds);
    let one = n as f64 / t;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let results: Vec<(usize, f64)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..cores).map(|_| s.spawn(|| run(&files, &spec, seconds))).collect();
        handles.into_iter().map(|h| h.join().unwrap_or((0, 1.0))).collect()
    });
    let all = results.iter().map(|r| r.0).sum::<usize>() as f64 / results.iter().map(|r| r.1).fold(0.0, f64::max);
    println!(
        "{{\"peer\": \"carelens\", \"files\": {}, \"one_core_files_per_s\": {one:.2}, \"all_cores_files_per_s\": {all:.2}, \"cores\": {cores}}}",
        files.len()
    );
}
