//! Where decode + preprocess time goes, per file: `cargo run --release -p carelens-imaging --example profile -- FILELIST`
use std::time::Instant;

use carelens_imaging::{DicomFile, Intensity, Limits, PreprocessSpec};

fn main() {
    let list = std::env::args().nth(1).unwrap_or_default();
    let spec = PreprocessSpec { intensity: Intensity::Dicom, ..PreprocessSpec::xray(224) };
    let mut rows = Vec::new();
    let (mut t_read, mut t_open, mut t_frame, mut t_pre) = (0.0, 0.0, 0.0, 0.0);
    for path in std::fs::read_to_string(&list).unwrap_or_default().lines() {
        let p = std::path::Path::new(path);
        let t0 = Instant::now();
        let Ok(bytes) = std::fs::read(p) else { continue };
        let t1 = Instant::now();
        let Ok(f) = DicomFile::open(p, &bytes, &Limits::DEFAULT) else { continue };
        let t2 = Instant::now();
        let Ok(img) = f.frame(f.info.frames.max(1) / 2) else { continue };
        let t3 = Instant::now();
        let _ = spec.apply(&img);
        let t4 = Instant::now();
        let d = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1000.0;
        t_read += d(t0, t1);
        t_open += d(t1, t2);
        t_frame += d(t2, t3);
        t_pre += d(t3, t4);
        rows.push((
            d(t0, t4),
            d(t1, t2),
            d(t2, t3),
            d(t3, t4),
            f.info.transfer_syntax_name.clone(),
            format!("{}x{}x{}", f.info.rows, f.info.columns, f.info.frames),
            path.rsplit('/').next().unwrap_or("").to_owned(),
        ));
    }
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    println!("total ms: read {t_read:.1} open {t_open:.1} frame {t_frame:.1} preprocess {t_pre:.1}");
    for r in rows.iter().take(15) {
        println!("{:8.1} ms  open {:7.1} frame {:7.1} pre {:7.1}  {} {} {}", r.0, r.1, r.2, r.3, r.4, r.5, r.6);
    }
}
