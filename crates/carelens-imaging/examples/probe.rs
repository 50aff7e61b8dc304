//! Decodes DICOM files and prints what carelens sees: `cargo run -p carelens-imaging --example probe -- FILE…`
use carelens_imaging::{DicomFile, Limits};

fn main() {
    for arg in std::env::args().skip(1) {
        let path = std::path::Path::new(&arg);
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                println!("{arg}: {e}");
                continue;
            }
        };
        match DicomFile::open(path, &bytes, &Limits::DEFAULT).and_then(|f| f.frame(0).map(|img| (f, img))) {
            Ok((f, img)) => {
                let (lo, hi) = img.pixels.iter().fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
                println!(
                    "OK {arg} {} {}x{}x{} ch={} {:?} range {lo}..{hi} voi={:?}",
                    f.info.transfer_syntax_name,
                    f.info.rows,
                    f.info.columns,
                    f.info.frames,
                    img.pixels.shape()[0],
                    img.photometric,
                    img.voi.as_ref().map(|v| match v {
                        carelens_imaging::Voi::Window { center, width } => format!("W{center}/{width}"),
                        carelens_imaging::Voi::Lut { table, .. } => format!("LUT{}", table.len()),
                    })
                );
            }
            Err(e) => println!("ERR {e}"),
        }
    }
}
