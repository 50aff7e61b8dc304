//! NumPy `.npz` archives (zip of `.npy` arrays), as MedMNIST ships its data sets.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use ndarray::{Array2, Array3, ArrayD, IxDyn};

use crate::{ImagingError, Limits, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NpyDtype {
    U8,
    U16,
    F32,
}

impl NpyDtype {
    fn parse(descr: &str) -> Option<Self> {
        match descr {
            "|u1" | "<u1" | "u1" | "|b1" => Some(Self::U8),
            "<u2" => Some(Self::U16),
            "<f4" => Some(Self::F32),
            _ => None,
        }
    }

    fn size(self) -> usize {
        match self {
            Self::U8 => 1,
            Self::U16 => 2,
            Self::F32 => 4,
        }
    }
}

/// One array from an archive, widened to `f32` (exact for u8/u16).
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    pub dtype: NpyDtype,
    pub data: ArrayD<f32>,
}

/// Parses the `.npy` header: returns (dtype, shape, header length).
fn parse_header(bytes: &[u8]) -> std::result::Result<(NpyDtype, Vec<usize>, usize), String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("missing the \\x93NUMPY magic".into());
    }
    let (len, start) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let header = bytes.get(start..start + len).ok_or("truncated header")?;
    let header = std::str::from_utf8(header).map_err(|_| "header is not text")?;
    let field = |name: &str| -> Option<&str> {
        let at = header.find(&format!("'{name}'"))?;
        Some(header[at + name.len() + 2..].trim_start().trim_start_matches(':').trim_start())
    };
    let descr = field("descr").ok_or("header has no descr")?;
    let descr = descr.trim_start_matches('\'').split('\'').next().unwrap_or_default();
    let dtype = NpyDtype::parse(descr).ok_or_else(|| format!("unsupported dtype `{descr}` (u1, <u2, <f4 are)"))?;
    let fortran = field("fortran_order").ok_or("header has no fortran_order")?;
    if fortran.starts_with("True") {
        return Err("Fortran-ordered arrays are not supported".into());
    }
    let shape_text = field("shape").ok_or("header has no shape")?;
    let inner = shape_text.trim_start_matches('(').split(')').next().unwrap_or_default();
    let shape = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| format!("bad shape `{inner}`")))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok((dtype, shape, start + len))
}

fn read_npy(path: &Path, entry: &str, bytes: &[u8], limits: &Limits) -> Result<NpyArray> {
    let npy = |detail: String| ImagingError::Npy { path: path.to_path_buf(), entry: entry.to_owned(), detail };
    let (dtype, shape, offset) = parse_header(bytes).map_err(npy)?;
    let elements = shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d as u64)).unwrap_or(u64::MAX);
    let decoded = elements.saturating_mul(4);
    if decoded > limits.max_decoded_bytes {
        return Err(ImagingError::TooLarge {
            path: path.to_path_buf(),
            what: "declared array size in bytes",
            value: decoded,
            limit: limits.max_decoded_bytes,
        });
    }
    let body = &bytes[offset..];
    let expected = elements as usize * dtype.size();
    if body.len() != expected {
        return Err(npy(format!("shape {shape:?} needs {expected} bytes of data, found {}", body.len())));
    }
    let values: Vec<f32> = match dtype {
        NpyDtype::U8 => body.iter().map(|&b| f32::from(b)).collect(),
        NpyDtype::U16 => body.chunks_exact(2).map(|c| f32::from(u16::from_le_bytes([c[0], c[1]]))).collect(),
        NpyDtype::F32 => body.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
    };
    let data = ArrayD::from_shape_vec(IxDyn(&shape), values).map_err(|e| npy(e.to_string()))?;
    Ok(NpyArray { dtype, data })
}

/// Reads every array of an `.npz` archive, keyed by name without `.npy`.
pub fn read_npz(path: impl AsRef<Path>, limits: &Limits) -> Result<BTreeMap<String, NpyArray>> {
    let path = path.as_ref();
    let file = std::fs::File::open(path).map_err(|source| ImagingError::Io { path: path.to_path_buf(), source })?;
    let archive = |detail: String| ImagingError::Archive { path: path.to_path_buf(), detail };
    let mut zip = zip::ZipArchive::new(file).map_err(|e| archive(e.to_string()))?;
    let mut out = BTreeMap::new();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| archive(e.to_string()))?;
        let name = entry.name().map_err(|e| archive(format!("entry {i} has an unreadable name: {e}")))?.into_owned();
        let Some(key) = name.strip_suffix(".npy") else { continue };
        let declared = entry.size();
        if declared > limits.max_decoded_bytes {
            return Err(ImagingError::TooLarge {
                path: path.to_path_buf(),
                what: "archive entry size in bytes",
                value: declared,
                limit: limits.max_decoded_bytes,
            });
        }
        // Never trust the declared size: read at most the limit plus one byte.
        let mut bytes = Vec::with_capacity(declared.min(64 << 20) as usize);
        (&mut entry).take(limits.max_decoded_bytes + 1).read_to_end(&mut bytes).map_err(|e| ImagingError::Npy {
            path: path.to_path_buf(),
            entry: name.clone(),
            detail: e.to_string(),
        })?;
        out.insert(key.to_owned(), read_npy(path, &name, &bytes, limits)?);
    }
    Ok(out)
}

/// A MedMNIST split pair (train + validation), e.g. PneumoniaMNIST: images N×H×W, labels N×1.
#[derive(Debug, Clone)]
pub struct MedMnist {
    pub source: PathBuf,
    pub train_images: Array3<f32>,
    pub train_labels: Array2<f32>,
    pub val_images: Array3<f32>,
    pub val_labels: Array2<f32>,
}

impl MedMnist {
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let mut arrays = read_npz(path, &Limits::DEFAULT)?;
        let mut take = |key: &str| {
            arrays.remove(key).ok_or_else(|| ImagingError::Npy {
                path: path.to_path_buf(),
                entry: format!("{key}.npy"),
                detail: "missing (MedMNIST archives have train_images, train_labels, val_images, val_labels)".into(),
            })
        };
        let dims3 = |a: NpyArray, key: &str| {
            a.data.into_dimensionality().map_err(|e| ImagingError::Npy {
                path: path.to_path_buf(),
                entry: format!("{key}.npy"),
                detail: format!("expected N×H×W images: {e}"),
            })
        };
        let dims2 = |a: NpyArray, key: &str| {
            a.data.into_dimensionality().map_err(|e| ImagingError::Npy {
                path: path.to_path_buf(),
                entry: format!("{key}.npy"),
                detail: format!("expected N×1 labels: {e}"),
            })
        };
        let train_images = dims3(take("train_images")?, "train_images")?;
        let train_labels = dims2(take("train_labels")?, "train_labels")?;
        let val_images = dims3(take("val_images")?, "val_images")?;
        let val_labels = dims2(take("val_labels")?, "val_labels")?;
        for (images, labels, split) in [(&train_images, &train_labels, "train"), (&val_images, &val_labels, "val")] {
            let (a, b): (&Array3<f32>, &Array2<f32>) = (images, labels);
            if a.shape()[0] != b.shape()[0] {
                return Err(ImagingError::Npy {
                    path: path.to_path_buf(),
                    entry: format!("{split}_labels.npy"),
                    detail: format!("{} labels for {} images", b.shape()[0], a.shape()[0]),
                });
            }
        }
        Ok(Self { source: path.to_path_buf(), train_images, train_labels, val_images, val_labels })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::Write;

    use super::*;

    fn npy(descr: &str, shape: &str, body: &[u8]) -> Vec<u8> {
        let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((header.len() as u16).to_le_bytes());
        out.extend(header.as_bytes());
        out.extend(body);
        out
    }

    fn npz(dir: &Path, entries: &[(&str, Vec<u8>)]) -> PathBuf {
        let path = dir.join("test.npz");
        let mut w = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        for (name, bytes) in entries {
            w.start_file(
                *name,
                zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated),
            )
            .unwrap();
            w.write_all(bytes).unwrap();
        }
        w.finish().unwrap();
        path
    }

    #[test]
    fn reads_u8_u16_f32_arrays() {
        let dir = tempfile_dir();
        let f32s: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let path = npz(
            dir.path(),
            &[
                ("a.npy", npy("|u1", "(2, 3)", &[0, 1, 2, 3, 4, 255])),
                ("b.npy", npy("<u2", "(2,)", &[0x34, 0x12, 0xff, 0xff])),
                ("c.npy", npy("<f4", "(2,)", &f32s)),
            ],
        );
        let arrays = read_npz(&path, &Limits::DEFAULT).unwrap();
        assert_eq!(arrays["a"].data.shape(), &[2, 3]);
        assert_eq!(arrays["a"].data[[1, 2]], 255.0);
        assert_eq!(arrays["b"].data.as_slice().unwrap(), &[4660.0, 65535.0]);
        assert_eq!(arrays["c"].data.as_slice().unwrap(), &[1.5, -2.0]);
    }

    #[track_caller]
    fn check_err(entries: &[(&str, Vec<u8>)], expect: &str) {
        let dir = tempfile_dir();
        let path = npz(dir.path(), entries);
        let err = read_npz(&path, &Limits::DEFAULT).unwrap_err().to_string();
        assert!(err.contains(expect), "expected `{expect}` in: {err}");
        assert!(err.contains("test.npz"), "error must name the file: {err}");
    }

    #[test]
    fn bad_arrays_get_precise_errors() {
        check_err(&[("x.npy", b"NOTNUMPY...".to_vec())], "entry `x.npy`: missing the \\x93NUMPY magic");
        check_err(&[("x.npy", npy("|u1", "(2, 3)", &[1, 2, 3]))], "needs 6 bytes of data, found 3");
        check_err(&[("x.npy", npy("<i8", "(1,)", &[0; 8]))], "unsupported dtype `<i8`");
        check_err(&[("x.npy", npy("|u1", "(100000, 100000, 1000)", &[]))], "declared array size in bytes");
        check_err(&[("x.npy", npy("|u1", "(2, x)", &[]))], "bad shape");
        let mut truncated = npy("|u1", "(2,)", &[1, 2]);
        truncated.truncate(12);
        check_err(&[("x.npy", truncated)], "truncated header");
    }

    #[test]
    fn non_archives_and_truncated_archives_are_refused() {
        let dir = tempfile_dir();
        let junk = dir.path().join("junk.npz");
        std::fs::write(&junk, b"definitely not a zip file").unwrap();
        let err = read_npz(&junk, &Limits::DEFAULT).unwrap_err().to_string();
        assert!(err.contains("junk.npz: not a readable .npz archive"), "{err}");
        let good = npz(dir.path(), &[("a.npy", npy("|u1", "(4,)", &[1, 2, 3, 4]))]);
        let bytes = std::fs::read(&good).unwrap();
        let cut = dir.path().join("cut.npz");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        assert!(read_npz(&cut, &Limits::DEFAULT).is_err());
        let missing = read_npz(dir.path().join("nope.npz"), &Limits::DEFAULT).unwrap_err().to_string();
        assert!(missing.contains("nope.npz"), "{missing}");
    }

    #[test]
    fn pneumoniamnist_from_the_shared_datasets() {
        let Some(dir) = std::env::var_os("CARELENS_SHARED_DATASETS") else {
            eprintln!("SKIPPED: CARELENS_SHARED_DATASETS is not set (cargo xtask test sets it to ../shared/datasets)");
            return;
        };
        let path = PathBuf::from(dir).join("pneumoniamnist/pneumoniamnist_trainval.npz");
        let m = MedMnist::load(&path).unwrap();
        assert_eq!(m.train_images.shape(), &[4708, 28, 28]);
        assert_eq!(m.val_images.shape(), &[524, 28, 28]);
        let positives = |l: &Array2<f32>| l.iter().filter(|&&v| v == 1.0).count();
        // The README's published split counts: train 1214 normal / 3494 pneumonia, val 135 / 389.
        assert_eq!((m.train_labels.len() - positives(&m.train_labels), positives(&m.train_labels)), (1214, 3494));
        assert_eq!((m.val_labels.len() - positives(&m.val_labels), positives(&m.val_labels)), (135, 389));
        let max = m.train_images.iter().copied().fold(0.0f32, f32::max);
        assert!(max > 200.0 && max <= 255.0, "8-bit images, max {max}");
    }

    fn tempfile_dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }
}
