//! Real DICOM files from the `pydicom` and `pydicom-data` wheels, fetched and unpacked by
//! `cargo xtask test` (see `xtask/src/servers.rs`), with `expected.json` written by pydicom
//! itself (`tests/pydicom_expect.py`). Every file must either decode to the rows × columns ×
//! frames pydicom reads from its header, or be refused with the error documented below.
//! Compressed files with an uncompressed twin are compared pixel by pixel.
//!
//! By hand: `export $(cargo xtask fixtures)`.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use carelens_imaging::{DicomFile, ImagingError, Limits};

#[derive(serde::Deserialize, Debug)]
struct Expected {
    file: String,
    #[serde(default)]
    pydicom_error: Option<String>,
    #[serde(default)]
    pixel_data: bool,
    #[serde(default)]
    rows: Option<u32>,
    #[serde(default)]
    columns: Option<u32>,
    #[serde(default)]
    frames: Option<u32>,
    #[serde(default)]
    photometric: String,
}

/// Files carelens refuses on purpose, with a substring of the error. Keep this short; each
/// entry must still fail (checked below), so a fix shows up as a test to update.
const REFUSED: &[(&str, &str)] = &[
    // 12-bit JPEG Extended (process 4): the pure-Rust JPEG decoder handles 8-bit only.
    ("test_files/JPEG-lossy.dcm", "JPEG Extended (Process 2 & 4), 12-bit"),
    ("test_files/JPGExtended.dcm", "JPEG Extended (Process 2 & 4), 12-bit"),
    // A JPEG 2000 codestream with an embedded sequence delimiter: openjp2 rejects it.
    ("test_files/JPEG2000-embedded-sequence-delimiter.dcm", "JPEG 2000"),
    // Dataset written in implicit VR under an explicit-VR transfer syntax.
    ("test_files/SC_rgb_jpeg.dcm", "invalid VR"),
    // Truncated pixel data: refused by the pre-scan.
    ("test_files/MR_truncated.dcm", "truncated or hostile"),
    // NumberOfFrames "1A" is not a number.
    ("test_files/badVR.dcm", "NumberOfFrames"),
    // No transfer syntax in the file meta: the pixel bytes cannot be interpreted.
    ("test_files/meta_missing_tsyntax.dcm", "no transfer syntax"),
    // Pixel Data without Rows/Columns.
    ("test_files/nested_priv_SQ.dcm", "Columns"),
    // Segmented palette colour LUTs.
    ("data/gdcm-US-ALOKA-16.dcm", "palette"),
    ("data/gdcm-US-ALOKA-16_big.dcm", "palette"),
];

/// Header-only files that the parser refuses (pydicom reads them; they hold no image).
const REFUSED_NO_PIXELS: &[(&str, &str)] = &[
    ("test_files/UN_sequence.dcm", "unknown VR (UN, undefined length)"),
    ("test_files/no_meta_group_length.dcm", "cannot parse"),
    ("test_files/rtplan_truncated.dcm", "truncated or hostile"),
    ("dicomdirtests/DICOMDIR-nooffset", "truncated or hostile"),
];

/// Files pydicom's header read stops short of the pixel data in, that carelens decodes:
/// openjp2 tolerates a JPEG 2000 codestream missing its last bytes.
const DECODED_WITHOUT_PYDICOM_PIXELS: &[&str] = &["data/emri_small_jpeg_2k_lossless_too_short.dcm"];

fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("CARELENS_PYDICOM_DIR").map(PathBuf::from);
    if dir.is_none() {
        assert!(
            std::env::var_os("CARELENS_REQUIRE_SERVERS").is_none(),
            "CARELENS_PYDICOM_DIR is not set; run through `cargo xtask test`"
        );
        eprintln!("SKIPPED: CARELENS_PYDICOM_DIR not set (run `cargo xtask test`, or export $(cargo xtask fixtures))");
    }
    dir
}

fn load(dir: &Path) -> Vec<Expected> {
    serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap()
}

fn refused_reason(file: &str, list: &[(&str, &'static str)]) -> Option<&'static str> {
    list.iter().find(|(f, _)| file.ends_with(f)).map(|(_, why)| *why)
}

#[test]
fn every_pydicom_file_decodes_or_is_refused_as_documented() {
    let Some(dir) = data_dir() else { return };
    let expected = load(&dir);
    assert!(expected.len() > 150, "only {} files listed", expected.len());
    let mut decoded_frames = 0;
    let mut by_syntax: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    for e in &expected {
        let path = dir.join("files").join(&e.file);
        let bytes = std::fs::read(&path).unwrap();
        let opened = DicomFile::open(&path, &bytes, &Limits::DEFAULT);
        if e.pydicom_error.is_some() {
            if opened.is_ok() {
                failures.push(format!("{}: pydicom refuses it ({:?}) but carelens opened it", e.file, e.pydicom_error));
            }
            continue;
        }
        let file = match opened {
            Ok(f) => f,
            Err(err) => {
                let msg = err.to_string();
                let list = if e.pixel_data { REFUSED } else { REFUSED_NO_PIXELS };
                match refused_reason(&e.file, list) {
                    Some(why) if msg.contains(why) => {}
                    _ => failures.push(format!("{}: refused unexpectedly: {msg}", e.file)),
                }
                continue;
            }
        };
        if !e.pixel_data {
            if DECODED_WITHOUT_PYDICOM_PIXELS.iter().any(|f| e.file.ends_with(f)) {
                assert!(file.frame(0).is_ok(), "{}", e.file);
                continue;
            }
            match file.frame(0) {
                Err(ImagingError::Unsupported { what, .. }) if what.contains("without pixel data") => {}
                other => failures.push(format!("{}: has no pixel data but frame(0) gave {other:?}", e.file)),
            }
            continue;
        }
        let entry = by_syntax.entry(file.info.transfer_syntax_name.clone()).or_default();
        entry.0 += 1;
        let frames = e.frames.unwrap_or(1).max(1);
        let mut result = Ok(());
        for i in 0..frames {
            match file.frame(i) {
                Ok(img) => {
                    let shape = img.pixels.shape();
                    let want_ch = if e.photometric.starts_with("MONOCHROME") { 1 } else { 3 };
                    let want = [want_ch, e.rows.unwrap_or(0) as usize, e.columns.unwrap_or(0) as usize];
                    if shape != want {
                        result = Err(format!("frame {i} has shape {shape:?}, pydicom says {want:?}"));
                        break;
                    }
                    if img.pixels.iter().any(|v| !v.is_finite()) {
                        result = Err(format!("frame {i} has non-finite samples"));
                        break;
                    }
                    decoded_frames += 1;
                }
                Err(err) => {
                    result = Err(err.to_string());
                    break;
                }
            }
        }
        if file.info.frames != frames {
            result = Err(format!("carelens reads {} frames, pydicom {frames}", file.info.frames));
        }
        match (result, refused_reason(&e.file, REFUSED)) {
            (Ok(()), None) => entry.1 += 1,
            (Ok(()), Some(_)) => failures.push(format!("{}: listed as refused but decodes; update REFUSED", e.file)),
            (Err(msg), Some(why)) if msg.contains(why) => {}
            (Err(msg), _) => failures.push(format!("{}: {msg}", e.file)),
        }
    }
    eprintln!("decoded {decoded_frames} frames; per transfer syntax (files with pixels: decoded/total):");
    for (ts, (total, ok)) in &by_syntax {
        eprintln!("  {ok:>3}/{total:<3} {ts}");
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    // Every common transfer syntax is represented and decoded at least once.
    for ts in [
        "Implicit VR Little Endian",
        "Explicit VR Little Endian",
        "Explicit VR Big Endian",
        "Deflated Explicit VR Little Endian",
        "JPEG Baseline (Process 1)",
        "JPEG Lossless, Non-Hierarchical, First-Order Prediction",
        "JPEG-LS Lossless Image Compression",
        "JPEG-LS Lossy (Near-Lossless) Image Compression",
        "JPEG 2000 Image Compression (Lossless Only)",
        "JPEG 2000 Image Compression",
        "RLE Lossless",
    ] {
        assert!(by_syntax.get(ts).is_some_and(|(_, ok)| *ok > 0), "no file decoded in {ts}");
    }
}

/// (compressed or re-encoded, uncompressed twin, largest allowed mean absolute difference as
/// a fraction of the twin's value range; 0 = bit-exact).
const TWINS: &[(&str, &str, f64)] = &[
    ("test_files/MR_small_RLE.dcm", "test_files/MR_small.dcm", 0.0),
    ("test_files/MR_small_bigendian.dcm", "test_files/MR_small.dcm", 0.0),
    ("test_files/MR_small_expb.dcm", "test_files/MR_small.dcm", 0.0),
    ("test_files/MR_small_implicit.dcm", "test_files/MR_small.dcm", 0.0),
    ("test_files/MR_small_padded.dcm", "test_files/MR_small.dcm", 0.0),
    ("test_files/MR_small_jp2klossless.dcm", "test_files/MR_small.dcm", 0.0),
    ("test_files/MR_small_jpeg_ls_lossless.dcm", "test_files/MR_small.dcm", 0.0),
    ("data/emri_small_RLE.dcm", "data/emri_small.dcm", 0.0),
    ("data/emri_small_big_endian.dcm", "data/emri_small.dcm", 0.0),
    ("data/emri_small_jpeg_2k_lossless.dcm", "data/emri_small.dcm", 0.0),
    ("data/emri_small_jpeg_ls_lossless.dcm", "data/emri_small.dcm", 0.0),
    ("data/693_J2KR.dcm", "data/693_UNCR.dcm", 0.0),
    ("data/MR2_J2KR.dcm", "data/MR2_UNCR.dcm", 0.0),
    ("data/RG1_J2KR.dcm", "data/RG1_UNCR.dcm", 0.0),
    ("data/RG3_J2KR.dcm", "data/RG3_UNCR.dcm", 0.0),
    ("data/US1_J2KR.dcm", "data/US1_UNCR.dcm", 0.0),
    ("test_files/SC_rgb_rle.dcm", "data/SC_rgb.dcm", 0.0),
    ("data/SC_rgb_expb.dcm", "data/SC_rgb.dcm", 0.0),
    ("test_files/SC_rgb_rle_2frame.dcm", "data/SC_rgb_2frame.dcm", 0.0),
    ("data/SC_rgb_expb_2frame.dcm", "data/SC_rgb_2frame.dcm", 0.0),
    ("test_files/SC_rgb_rle_16bit.dcm", "data/SC_rgb_16bit.dcm", 0.0),
    ("data/SC_rgb_expb_16bit.dcm", "data/SC_rgb_16bit.dcm", 0.0),
    ("test_files/SC_rgb_rle_16bit_2frame.dcm", "data/SC_rgb_16bit_2frame.dcm", 0.0),
    ("data/SC_rgb_expb_16bit_2frame.dcm", "data/SC_rgb_16bit_2frame.dcm", 0.0),
    ("test_files/SC_rgb_rle_32bit.dcm", "data/SC_rgb_32bit.dcm", 0.0),
    ("data/SC_rgb_expb_32bit.dcm", "data/SC_rgb_32bit.dcm", 0.0),
    ("test_files/SC_rgb_rle_32bit_2frame.dcm", "data/SC_rgb_32bit_2frame.dcm", 0.0),
    ("data/SC_rgb_expb_32bit_2frame.dcm", "data/SC_rgb_32bit_2frame.dcm", 0.0),
    ("test_files/SC_rgb_small_odd_big_endian.dcm", "test_files/SC_rgb_small_odd.dcm", 0.0),
    ("test_files/SC_rgb_jpeg_gdcm.dcm", "data/SC_rgb.dcm", 0.0),
    ("test_files/SC_rgb_gdcm_KY.dcm", "data/SC_rgb_gdcm2k_uncompressed.dcm", 0.0),
    ("data/OBXXXX1A_expb.dcm", "data/OBXXXX1A.dcm", 0.0),
    ("data/OBXXXX1A_rle.dcm", "data/OBXXXX1A.dcm", 0.0),
    ("data/OBXXXX1A_rle_2frame.dcm", "data/OBXXXX1A_2frame.dcm", 0.0),
    ("data/OBXXXX1A_expb_2frame.dcm", "data/OBXXXX1A_2frame.dcm", 0.0),
    ("data/liver_expb.dcm", "data/liver.dcm", 0.0),
    ("test_files/liver_expb_1frame.dcm", "test_files/liver_1frame.dcm", 0.0),
    ("test_files/rtdose_expb.dcm", "test_files/rtdose.dcm", 0.0),
    ("test_files/rtdose_rle.dcm", "test_files/rtdose.dcm", 0.0),
    ("test_files/rtdose_rle_1frame.dcm", "test_files/rtdose_1frame.dcm", 0.0),
    // Lossy codecs against the same image decompressed by the reference toolkit: decoders
    // may differ by rounding (IDCT, colour transform), not by content.
    ("/693_J2KI.dcm", "data/693_UNCI.dcm", 0.002),
    ("data/MR2_J2KI.dcm", "data/MR2_UNCI.dcm", 0.002),
    ("data/RG1_J2KI.dcm", "data/RG1_UNCI.dcm", 0.002),
    ("data/RG3_J2KI.dcm", "data/RG3_UNCI.dcm", 0.002),
    ("data/US1_J2KI.dcm", "data/US1_UNCI.dcm", 0.01),
    ("test_files/SC_rgb_dcmtk_+eb+cr.dcm", "data/SC_rgb_dcmtk_ebcr_dcmd.dcm", 0.01),
    ("test_files/SC_rgb_dcmtk_+eb+cy+n1.dcm", "data/SC_rgb_dcmtk_ebcyn1_dcmd.dcm", 0.01),
    ("test_files/SC_rgb_dcmtk_+eb+cy+n2.dcm", "data/SC_rgb_dcmtk_ebcyn2_dcmd.dcm", 0.01),
    ("test_files/SC_rgb_dcmtk_+eb+cy+np.dcm", "data/SC_rgb_dcmtk_ebcynp_dcmd.dcm", 0.01),
    ("test_files/SC_rgb_dcmtk_+eb+cy+s2.dcm", "data/SC_rgb_dcmtk_ebcys2_dcmd.dcm", 0.01),
    ("test_files/SC_rgb_dcmtk_+eb+cy+s4.dcm", "data/SC_rgb_dcmtk_ebcys4_dcmd.dcm", 0.01),
    ("test_files/JPEG2000.dcm", "data/JPEG2000_UNC.dcm", 0.002),
    ("test_files/SC_ybr_full_422_uncompressed.dcm", "data/SC_rgb.dcm", 0.01),
    ("data/SC_ybr_full_uncompressed.dcm", "data/SC_rgb.dcm", 0.01),
];

fn find(dir: &Path, suffix: &str) -> PathBuf {
    let expected = load(dir);
    let hit =
        expected.iter().find(|e| e.file.ends_with(suffix)).unwrap_or_else(|| panic!("{suffix} not in the wheels"));
    dir.join("files").join(&hit.file)
}

#[test]
fn compressed_files_match_their_uncompressed_twins() {
    let Some(dir) = data_dir() else { return };
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for (a, b, tolerance) in TWINS {
        let open = |name: &str| {
            let path = find(&dir, name);
            let bytes = std::fs::read(&path).unwrap();
            DicomFile::open(&path, &bytes, &Limits::DEFAULT).and_then(|f| f.frames()).unwrap()
        };
        let (fa, fb) = (open(a), open(b));
        assert_eq!(fa.len(), fb.len(), "{a} vs {b}: frame counts");
        let (mut sum, mut n, mut max, mut lo, mut hi) = (0f64, 0usize, 0f64, f64::MAX, f64::MIN);
        for (x, y) in fa.iter().zip(&fb) {
            assert_eq!(x.pixels.shape(), y.pixels.shape(), "{a} vs {b}: shapes");
            for (&p, &q) in x.pixels.iter().zip(y.pixels.iter()) {
                let d = (f64::from(p) - f64::from(q)).abs();
                sum += d;
                n += 1;
                max = max.max(d);
                lo = lo.min(f64::from(q));
                hi = hi.max(f64::from(q));
            }
        }
        let range = (hi - lo).max(1.0);
        let mean = sum / n as f64 / range;
        report.push(format!("  {a} vs {b}: mean |Δ| {:.5} of range, max |Δ| {max}", mean));
        let ok = if *tolerance == 0.0 { max == 0.0 } else { mean <= *tolerance };
        if !ok {
            failures.push(format!("{a} vs {b}: mean |Δ| {mean:.5} of range (allowed {tolerance}), max {max}"));
        }
    }
    eprintln!("{}", report.join("\n"));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// CharLS 2.4 (through pyjpegls 1.5.1, `tests/charls_oracle.py`) decoded these: the SHA-256 of
/// every frame's samples as little-endian u16, channel-major. carelens's own JPEG-LS decoder
/// must agree bit for bit, near-lossless and colour (line and sample interleaved) included.
const CHARLS: &[(&str, &str)] = &[
    ("data/emri_small_jpeg_ls_lossless.dcm", "9719c5d0f62ce971a1039c9cd73a6785427f4f80a1d3b6969cb9ffc425fba054"),
    ("test_files/JPEGLSNearLossless_08.dcm", "5a92d12c46d60428811b4c409ac148e7c947375019474c1fabee7d3b7bd26a13"),
    ("test_files/JPEGLSNearLossless_16.dcm", "f929318278115ce952d85c011f752634e266720680e807bd03bf97ded3f0d3e4"),
    ("test_files/MR_small_jpeg_ls_lossless.dcm", "88617aaa46138fb1b6e2a951e762d962382354d69f47f8c04d4abff2f6a6a63e"),
    ("test_files/SC_rgb_jls_lossy_line.dcm", "e4b777b50aa83702ab0d908257ea8ce1b47ed253f10157122bdf5abc614569e3"),
    ("test_files/SC_rgb_jls_lossy_sample.dcm", "e4b777b50aa83702ab0d908257ea8ce1b47ed253f10157122bdf5abc614569e3"),
];

#[test]
fn jpeg_ls_matches_charls() {
    use sha2::Digest;
    let Some(dir) = data_dir() else { return };
    let mut failures = Vec::new();
    for (name, want) in CHARLS {
        let path = find(&dir, name);
        let bytes = std::fs::read(&path).unwrap();
        let frames = DicomFile::open(&path, &bytes, &Limits::DEFAULT).and_then(|f| f.frames()).unwrap();
        let mut hash = sha2::Sha256::new();
        for frame in &frames {
            // Samples are integers (no rescale in these files); signed ones wrap to their
            // 16-bit pattern, as CharLS returns them.
            for &v in frame.pixels.iter() {
                hash.update((v as i64 as u16).to_le_bytes());
            }
        }
        let got = hex::encode(hash.finalize());
        if got != *want {
            failures.push(format!("{name}: {got}, CharLS gives {want}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Bit flips anywhere in a JPEG-LS file's pixel data (the codestream is the file's tail): the
/// decoder returns an image or an error, never panics (test builds check arithmetic overflow).
#[test]
fn jpeg_ls_survives_corrupted_codestreams() {
    let Some(dir) = data_dir() else { return };
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (mut decoded, mut refused) = (0, 0);
    for (name, _) in CHARLS {
        let path = find(&dir, name);
        let good = std::fs::read(&path).unwrap();
        let tail = good.len() * 3 / 4;
        for _ in 0..150 {
            let mut bad = good.clone();
            for _ in 0..1 + next() % 4 {
                let at = tail + (next() as usize) % (good.len() - tail);
                bad[at] ^= 1 << (next() % 8);
            }
            match DicomFile::open(&path, &bad, &Limits::DEFAULT).and_then(|f| f.frames()) {
                Ok(_) => decoded += 1,
                Err(_) => refused += 1,
            }
        }
    }
    eprintln!("corrupted JPEG-LS files: {decoded} decoded, {refused} refused");
    assert!(refused > 0, "no corruption was detected at all");
}

#[test]
fn dicomdir_lists_the_files_it_indexes() {
    let Some(dir) = data_dir() else { return };
    let path = find(&dir, "dicomdirtests/DICOMDIR");
    let bytes = std::fs::read(&path).unwrap();
    let file = DicomFile::open(&path, &bytes, &Limits::DEFAULT).unwrap();
    assert!(file.is_dicomdir());
    let files = file.dicomdir_files().unwrap();
    // pydicom's own test expects 31 referenced images in this DICOMDIR.
    assert_eq!(files.len(), 31, "{files:?}");
    let base = path.parent().unwrap();
    assert!(files.iter().all(|f| base.join(f).is_file()), "every referenced file exists");
}

#[test]
fn deidentified_real_files_keep_their_pixels_in_every_syntax() {
    let Some(dir) = data_dir() else { return };
    let cfg = carelens_imaging::DeidConfig { secret: b"pydicom test secret, 32 bytes..", allow_burned_in: false };
    for name in [
        "test_files/CT_small.dcm",
        "test_files/MR_small_bigendian.dcm",
        "test_files/MR_small_implicit.dcm",
        "test_files/MR_small_RLE.dcm",
        "test_files/MR_small_jp2klossless.dcm",
        "test_files/MR_small_jpeg_ls_lossless.dcm",
        "test_files/SC_rgb_jpeg_dcmtk.dcm",
        "test_files/image_dfl.dcm",
        "data/emri_small.dcm",
        "test_files/rtdose.dcm",
    ] {
        let path = find(&dir, name);
        let bytes = std::fs::read(&path).unwrap();
        let src = DicomFile::open(&path, &bytes, &Limits::DEFAULT).unwrap();
        let out = src.deidentify(&cfg).unwrap_or_else(|e| panic!("{name}: {e}"));
        let de = DicomFile::open(&path, &out.bytes, &Limits::DEFAULT).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(de.info.transfer_syntax, src.info.transfer_syntax, "{name}");
        assert_eq!(de.frames().unwrap(), src.frames().unwrap(), "{name}: pixels changed");
        if let Some(pid) = src.info.patient_id.as_deref().filter(|p| p.len() >= 4) {
            assert!(!out.bytes.windows(pid.len()).any(|w| w == pid.as_bytes()), "{name}: PatientID survived");
        }
    }
}
