//! A pre-scan of DICOM Part 10 bytes that runs before any decoder (it uses only the standard
//! data dictionary, to know which implicit-VR elements are sequences): it walks the element
//! headers without allocating, refuses declared lengths larger than what remains of the
//! file, and checks the image geometry against [`Limits`]. This is what stops a few-KB file
//! from making a decoder allocate gigabytes (dicom-rs reserves declared lengths up front).

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::{ImagingError, Limits, Result};

const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
const EXPLICIT_BE: &str = "1.2.840.10008.1.2.2";
const DEFLATED: &str = "1.2.840.10008.1.2.1.99";
const UNDEFINED: u32 = 0xFFFF_FFFF;

/// What the scan learned about a file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DicomScan {
    pub transfer_syntax: String,
    pub rows: u32,
    pub columns: u32,
    pub frames: u32,
    pub samples_per_pixel: u32,
    pub bits_allocated: u32,
    /// Length of native (uncompressed) pixel data; `None` when encapsulated or deflated.
    pub pixel_data_bytes: Option<u64>,
    /// Elements walked (a deflated dataset is inflated with a cap and walked too).
    pub elements: usize,
    /// Photometric interpretation (0028,0004) as written.
    pub photometric: String,
    /// Pixel data is encapsulated (compressed fragments).
    pub encapsulated: bool,
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
    big_endian: bool,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn malformed(&self, detail: String) -> ImagingError {
        ImagingError::Decode { path: self.path.to_path_buf(), format: "DICOM", detail }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.b.len()).ok_or_else(|| {
            self.malformed(format!(
                "truncated at byte {} (needed {n} more, {} left)",
                self.pos,
                self.b.len() - self.pos
            ))
        })?;
        let b: &'a [u8] = self.b;
        let s = &b[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u16(&mut self) -> Result<u16> {
        let big = self.big_endian;
        let s = self.take(2)?;
        Ok(if big { u16::from_be_bytes([s[0], s[1]]) } else { u16::from_le_bytes([s[0], s[1]]) })
    }

    fn u32(&mut self) -> Result<u32> {
        let big = self.big_endian;
        let s = self.take(4)?;
        let a = [s[0], s[1], s[2], s[3]];
        Ok(if big { u32::from_be_bytes(a) } else { u32::from_le_bytes(a) })
    }

    fn remaining(&self) -> usize {
        self.b.len() - self.pos
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sequence,
    Item,
    Fragments,
}

struct Container {
    kind: Kind,
    end: Option<usize>,
    explicit_outside: bool,
}

const KNOWN_VRS: [&[u8; 2]; 34] = [
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"OB", b"OD", b"OF", b"OL",
    b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"SV", b"TM", b"UC", b"UI", b"UL", b"UN", b"UR", b"US",
    b"UT", b"UV",
];

/// Tag, VR (explicit syntaxes only), declared length.
type Header = ((u16, u16), Option<[u8; 2]>, u32);

/// Reads one element header.
fn header(c: &mut Cursor<'_>, explicit: bool) -> Result<Header> {
    let group = c.u16()?;
    let element = c.u16()?;
    // Item and delimitation tags have no VR in any syntax.
    if group == 0xFFFE {
        return Ok(((group, element), None, c.u32()?));
    }
    if !explicit {
        return Ok(((group, element), None, c.u32()?));
    }
    let vr_bytes = c.take(2)?;
    let vr = [vr_bytes[0], vr_bytes[1]];
    if !KNOWN_VRS.contains(&&vr) {
        // Decoders disagree on how long an unknown VR's header is (dicom-rs reads a 4-byte
        // length, found by the fuzz target): refuse rather than guess.
        return Err(c.malformed(format!(
            "element ({group:04X},{element:04X}) has an invalid VR {:?} at byte {}",
            String::from_utf8_lossy(&vr),
            c.pos - 2
        )));
    }
    let long = matches!(
        &vr,
        b"OB" | b"OW" | b"OF" | b"OD" | b"OL" | b"OV" | b"SQ" | b"UT" | b"UN" | b"UC" | b"UR" | b"SV" | b"UV"
    );
    let len = if long {
        c.take(2)?;
        c.u32()?
    } else {
        u32::from(c.u16()?)
    };
    Ok(((group, element), Some(vr), len))
}

fn us_value(c: &Cursor<'_>, v: &[u8]) -> u32 {
    if v.len() < 2 {
        return 0;
    }
    u32::from(if c.big_endian { u16::from_be_bytes([v[0], v[1]]) } else { u16::from_le_bytes([v[0], v[1]]) })
}

/// Scans `bytes` (a whole DICOM Part 10 file); `path` names it in errors.
pub fn scan_dicom(path: &Path, bytes: &[u8], limits: &Limits) -> Result<DicomScan> {
    if bytes.len() < 132 || &bytes[128..132] != b"DICM" {
        return Err(ImagingError::Unsupported {
            path: path.to_path_buf(),
            what: "file: not DICOM Part 10 (no DICM magic at byte 128)".into(),
        });
    }
    let mut c = Cursor { b: bytes, pos: 132, big_endian: false, path };
    let mut scan = DicomScan { frames: 1, samples_per_pixel: 1, ..Default::default() };
    // File meta group: always explicit VR little endian.
    while c.remaining() >= 4 && u16::from_le_bytes([bytes[c.pos], bytes[c.pos + 1]]) == 0x0002 {
        let (tag, _, len) = header(&mut c, true)?;
        check_len(&c, tag, len)?;
        let v = c.take(len as usize)?;
        scan.elements += 1;
        if tag == (0x0002, 0x0010) {
            scan.transfer_syntax = String::from_utf8_lossy(v).trim_end_matches(['\0', ' ']).to_owned();
        }
    }
    if scan.transfer_syntax.is_empty() {
        return Err(c.malformed("file meta has no transfer syntax (0002,0010)".into()));
    }
    if scan.transfer_syntax == DEFLATED {
        // Inflate with a cap, then walk the inflated dataset: a deflate bomb or a hostile
        // declared length inside the compressed stream is refused before any decoder sees it.
        let cap = limits.max_decoded_bytes.saturating_add(64 << 20);
        let mut inflated = Vec::new();
        flate2::read::DeflateDecoder::new(&bytes[c.pos..])
            .take(cap + 1)
            .read_to_end(&mut inflated)
            .map_err(|e| c.malformed(format!("deflated dataset does not inflate: {e}")))?;
        if inflated.len() as u64 > cap {
            return Err(too_large(path, "inflated dataset in bytes", cap + 1, cap));
        }
        let mut data = scan_dataset(path, &inflated, true, false, limits)?;
        data.transfer_syntax = scan.transfer_syntax;
        data.elements += scan.elements;
        return Ok(data);
    }
    let explicit = scan.transfer_syntax != IMPLICIT_LE;
    let big_endian = scan.transfer_syntax == EXPLICIT_BE;
    let meta_elements = scan.elements;
    let mut data = scan_dataset(path, &bytes[c.pos..], explicit, big_endian, limits)?;
    data.transfer_syntax = scan.transfer_syntax;
    data.elements += meta_elements;
    Ok(data)
}

/// Walks a dataset (no preamble or meta group) and checks lengths and geometry.
fn scan_dataset(path: &Path, bytes: &[u8], explicit: bool, big_endian: bool, limits: &Limits) -> Result<DicomScan> {
    let mut c = Cursor { b: bytes, pos: 0, big_endian, path };
    let mut scan = DicomScan { frames: 1, samples_per_pixel: 1, ..Default::default() };
    // Open containers: sequences, items and encapsulated pixel data, with their end when
    // their length is defined, and the VR mode to restore when they close (an undefined-length
    // UN sequence is implicit VR inside).
    let mut stack: Vec<Container> = Vec::new();
    let mut explicit = explicit;
    loop {
        while let Some(top) = stack.last().filter(|t| t.end.is_some_and(|e| e <= c.pos)) {
            explicit = top.explicit_outside;
            stack.pop();
        }
        if c.remaining() == 0 {
            break;
        }
        if stack.len() > 64 {
            return Err(c.malformed("sequences nested more than 64 deep".into()));
        }
        let (tag, vr, len) = header(&mut c, explicit)?;
        scan.elements += 1;
        if scan.elements > 1_000_000 {
            return Err(too_large(path, "element count", scan.elements as u64, 1_000_000));
        }
        let in_fragments = stack.last().is_some_and(|t| t.kind == Kind::Fragments);
        match tag {
            (0xFFFE, 0xE0DD) => {
                // Sequence delimiter: closes the innermost undefined-length sequence (and any
                // undefined-length item left open inside it).
                while let Some(top) = stack.pop() {
                    explicit = top.explicit_outside;
                    if top.kind != Kind::Item && top.end.is_none() {
                        break;
                    }
                }
                continue;
            }
            (0xFFFE, 0xE00D) => {
                if stack.last().is_some_and(|t| t.kind == Kind::Item)
                    && let Some(top) = stack.pop()
                {
                    explicit = top.explicit_outside;
                }
                continue;
            }
            (0xFFFE, 0xE000) if in_fragments => {
                check_len(&c, tag, len)?;
                check_within(&c, &stack, tag, len)?;
                c.take(len as usize)?;
                continue;
            }
            (0xFFFE, 0xE000) => {
                let end = if len == UNDEFINED {
                    None
                } else {
                    check_len(&c, tag, len)?;
                    check_within(&c, &stack, tag, len)?;
                    Some(c.pos + len as usize)
                };
                stack.push(Container { kind: Kind::Item, end, explicit_outside: explicit });
                continue;
            }
            _ => {}
        }
        let is_sq = vr.as_ref().is_some_and(|v| v == b"SQ");
        let is_un = vr.as_ref().is_some_and(|v| v == b"UN");
        if len == UNDEFINED {
            if tag == (0x7FE0, 0x0010) {
                if stack.is_empty() {
                    scan.pixel_data_bytes = None;
                    scan.encapsulated = true;
                }
                stack.push(Container { kind: Kind::Fragments, end: None, explicit_outside: explicit });
            } else if is_un {
                // A sequence of unknown VR, implicit VR inside (PS3.5 6.2.2): dicom-rs reads it
                // as explicit and can take bytes for a multi-gigabyte length (found by the fuzz
                // target), so it is refused here rather than handed on.
                return Err(c.malformed(format!(
                    "element ({:04X},{:04X}) is a sequence of unknown VR (UN, undefined length), which this build does not read",
                    tag.0, tag.1
                )));
            } else {
                stack.push(Container { kind: Kind::Sequence, end: None, explicit_outside: explicit });
            }
            continue;
        }
        check_len(&c, tag, len)?;
        check_within(&c, &stack, tag, len)?;
        // Implicit VR names no VR: decoders take it from the dictionary, so a defined-length
        // sequence there is walked too (dicom-rs does, and would trust lengths inside it).
        let is_sq = is_sq || (vr.is_none() && implicit_sequence(tag));
        if is_sq {
            stack.push(Container { kind: Kind::Sequence, end: Some(c.pos + len as usize), explicit_outside: explicit });
            continue;
        }
        let value = c.take(len as usize)?;
        if !stack.is_empty() {
            // Icon images and other nested datasets have their own geometry: ignore it.
            continue;
        }
        match tag {
            (0x0028, 0x0010) => scan.rows = us_value(&c, value),
            (0x0028, 0x0011) => scan.columns = us_value(&c, value),
            (0x0028, 0x0002) => scan.samples_per_pixel = us_value(&c, value),
            (0x0028, 0x0100) => scan.bits_allocated = us_value(&c, value),
            (0x0028, 0x0004) => {
                scan.photometric = String::from_utf8_lossy(value).trim_matches(['\0', ' ']).to_owned();
            }
            (0x0028, 0x0008) => {
                let text = String::from_utf8_lossy(value);
                scan.frames = text.trim_matches(['\0', ' ']).parse().map_err(|_| {
                    c.malformed(format!("NumberOfFrames (0028,0008) is not a number: {:?}", text.trim()))
                })?;
            }
            (0x7FE0, 0x0010) => scan.pixel_data_bytes = Some(u64::from(len)),
            _ => {}
        }
    }
    check_geometry(path, &scan, limits)?;
    Ok(scan)
}

fn too_large(path: &Path, what: &'static str, value: u64, limit: u64) -> ImagingError {
    ImagingError::TooLarge { path: PathBuf::from(path), what, value, limit }
}

/// A value must also end inside the sequence or item that holds it.
fn check_within(c: &Cursor<'_>, stack: &[Container], tag: (u16, u16), len: u32) -> Result<()> {
    if let Some(end) = stack.iter().rev().find_map(|t| t.end)
        && c.pos + len as usize > end
    {
        return Err(c.malformed(format!(
            "element ({:04X},{:04X}) declares {len} bytes, past the end of the sequence item holding it",
            tag.0, tag.1
        )));
    }
    Ok(())
}

/// Whether the standard dictionary says `tag` is a sequence (for implicit VR).
fn implicit_sequence(tag: (u16, u16)) -> bool {
    use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
    dicom_dictionary_std::StandardDataDictionary
        .by_tag(dicom_core::Tag(tag.0, tag.1))
        .is_some_and(|e| matches!(e.vr(), VirtualVr::Exact(dicom_core::VR::SQ)))
}

fn check_len(c: &Cursor<'_>, tag: (u16, u16), len: u32) -> Result<()> {
    if len as usize > c.remaining() {
        return Err(c.malformed(format!(
            "element ({:04X},{:04X}) declares {len} bytes but only {} remain (truncated or hostile file)",
            tag.0,
            tag.1,
            c.remaining()
        )));
    }
    Ok(())
}

fn check_geometry(path: &Path, s: &DicomScan, limits: &Limits) -> Result<()> {
    let max_dim = u64::from(limits.max_dimension);
    for (what, v) in [("rows", s.rows), ("columns", s.columns)] {
        if u64::from(v) > max_dim {
            return Err(too_large(path, what, u64::from(v), max_dim));
        }
    }
    if s.frames > limits.max_frames {
        return Err(too_large(path, "number of frames", u64::from(s.frames), u64::from(limits.max_frames)));
    }
    let decoded = u64::from(s.rows)
        * u64::from(s.columns)
        * u64::from(s.frames)
        * u64::from(s.samples_per_pixel.max(1))
        * u64::from(s.bits_allocated.max(8)).div_ceil(8);
    if decoded > limits.max_decoded_bytes {
        return Err(too_large(path, "decoded pixel size in bytes", decoded, limits.max_decoded_bytes));
    }
    let samples =
        u64::from(s.rows) * u64::from(s.columns) * u64::from(s.frames) * u64::from(s.samples_per_pixel.max(1));
    let mut needed = (samples * u64::from(s.bits_allocated.max(1))).div_ceil(8);
    if s.photometric == "YBR_FULL_422" {
        // Two luma samples share one Cb/Cr pair: 2 samples per pixel instead of 3.
        needed = needed / 3 * 2;
    }
    match s.pixel_data_bytes {
        Some(0) => Err(ImagingError::Decode {
            path: path.to_path_buf(),
            format: "DICOM",
            detail: "pixel data (7FE0,0010) is empty".into(),
        }),
        Some(n) if n < needed => Err(ImagingError::Decode {
            path: path.to_path_buf(),
            format: "DICOM",
            detail: format!("pixel data has {n} bytes but rows × columns × frames × samples × bits needs {needed}"),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Builds a DICOM file: meta (explicit LE) + dataset in `syntax`.
    type Element<'a> = ((u16, u16), &'a [u8; 2], Vec<u8>);

    fn file(syntax: &str, elements: &[Element<'_>]) -> Vec<u8> {
        let mut out = vec![0u8; 128];
        out.extend(b"DICM");
        let mut ts = syntax.as_bytes().to_vec();
        if ts.len() % 2 == 1 {
            ts.push(0);
        }
        put(&mut out, (0x0002, 0x0010), b"UI", &ts, true, false);
        let explicit = syntax != IMPLICIT_LE;
        let big = syntax == EXPLICIT_BE;
        for (tag, vr, value) in elements {
            put(&mut out, *tag, vr, value, explicit, big);
        }
        out
    }

    fn put(out: &mut Vec<u8>, tag: (u16, u16), vr: &[u8; 2], value: &[u8], explicit: bool, big: bool) {
        let u16b = |v: u16| if big { v.to_be_bytes() } else { v.to_le_bytes() };
        let u32b = |v: u32| if big { v.to_be_bytes() } else { v.to_le_bytes() };
        out.extend(u16b(tag.0));
        out.extend(u16b(tag.1));
        if explicit {
            out.extend(vr);
            if matches!(vr, b"OB" | b"OW" | b"SQ" | b"UN" | b"UT") {
                out.extend([0, 0]);
                out.extend(u32b(value.len() as u32));
            } else {
                out.extend(u16b(value.len() as u16));
            }
        } else {
            out.extend(u32b(value.len() as u32));
        }
        out.extend(value);
    }

    fn us(v: u16, big: bool) -> Vec<u8> {
        (if big { v.to_be_bytes() } else { v.to_le_bytes() }).to_vec()
    }

    fn image(syntax: &str, rows: u16, cols: u16, pixels: usize) -> Vec<u8> {
        let big = syntax == EXPLICIT_BE;
        file(
            syntax,
            &[
                ((0x0028, 0x0002), b"US", us(1, big)),
                ((0x0028, 0x0010), b"US", us(rows, big)),
                ((0x0028, 0x0011), b"US", us(cols, big)),
                ((0x0028, 0x0100), b"US", us(16, big)),
                ((0x7FE0, 0x0010), b"OW", vec![0; pixels]),
            ],
        )
    }

    #[track_caller]
    fn err(bytes: &[u8], limits: &Limits) -> String {
        scan_dicom(Path::new("scan.dcm"), bytes, limits).unwrap_err().to_string()
    }

    #[test]
    fn valid_files_in_three_syntaxes() {
        for syntax in [IMPLICIT_LE, "1.2.840.10008.1.2.1", EXPLICIT_BE] {
            let s = scan_dicom(Path::new("a.dcm"), &image(syntax, 4, 3, 24), &Limits::DEFAULT).unwrap();
            assert_eq!((s.rows, s.columns, s.frames, s.bits_allocated), (4, 3, 1, 16), "{syntax}");
            assert_eq!(s.pixel_data_bytes, Some(24));
            assert_eq!(s.transfer_syntax, syntax);
        }
    }

    #[test]
    fn hostile_and_broken_files_are_refused_before_allocation() {
        let limits = Limits::DEFAULT;
        assert!(err(b"not dicom at all", &limits).contains("scan.dcm: unsupported file: not DICOM Part 10"));
        let mut wrong_magic = image(IMPLICIT_LE, 2, 2, 8);
        wrong_magic[129] = b'X';
        assert!(err(&wrong_magic, &limits).contains("no DICM magic"));

        // A 200-byte file that declares a 4 GB element: refused, nothing allocated.
        let mut hostile = file("1.2.840.10008.1.2.1", &[((0x0028, 0x0010), b"US", us(2, false))]);
        hostile.extend([0xE0, 0x7F, 0x10, 0x00]);
        hostile.extend(b"OB\0\0");
        hostile.extend(0xFFFF_FFF0u32.to_le_bytes());
        hostile.extend([0u8; 16]);
        let e = err(&hostile, &limits);
        assert!(e.contains("element (7FE0,0010) declares 4294967280 bytes but only 16 remain"), "{e}");

        let full = image(IMPLICIT_LE, 4, 4, 32);
        let e = err(&full[..full.len() - 10], &limits);
        assert!(e.contains("declares 32 bytes but only 22 remain"), "{e}");
        let e = err(&full[..135], &limits);
        assert!(e.contains("no transfer syntax"), "{e}");
        let e = err(&full[..137], &limits);
        assert!(e.contains("truncated at byte 136"), "{e}");

        assert!(err(&image(IMPLICIT_LE, 4, 4, 0), &limits).contains("pixel data (7FE0,0010) is empty"));
        assert!(err(&image(IMPLICIT_LE, 4, 4, 10), &limits).contains("pixel data has 10 bytes but"));

        // 60 000 × 60 000 declared in a tiny file.
        let e = err(&image(IMPLICIT_LE, 60_000, 60_000, 8), &limits);
        assert!(e.contains("rows of 60000 exceeds the limit of 16384"), "{e}");
        let small = Limits { max_decoded_bytes: 1000, ..limits };
        let e = err(&image(IMPLICIT_LE, 100, 100, 20_000), &small);
        assert!(e.contains("decoded pixel size in bytes of 20000 exceeds the limit of 1000"), "{e}");
    }

    /// Until the cargo-fuzz target exists: 20 000 deterministic byte mutations and
    /// truncations of valid files in each syntax must all return (Ok or Err), never panic.
    #[test]
    fn mutated_files_never_panic() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for syntax in [IMPLICIT_LE, "1.2.840.10008.1.2.1", EXPLICIT_BE] {
            let base = image(syntax, 8, 8, 128);
            for _ in 0..20_000 / 3 {
                let mut f = base.clone();
                for _ in 0..(next() % 4 + 1) {
                    let at = (next() as usize) % f.len();
                    f[at] = next() as u8;
                }
                if next() % 5 == 0 {
                    f.truncate((next() as usize) % f.len());
                }
                let _ = scan_dicom(Path::new("m.dcm"), &f, &Limits::DEFAULT);
            }
        }
    }

    #[test]
    fn frames_and_meta_without_syntax() {
        let mut f = file(
            IMPLICIT_LE,
            &[
                ((0x0028, 0x0008), b"IS", b"9999".to_vec()),
                ((0x0028, 0x0010), b"US", us(2, false)),
                ((0x0028, 0x0011), b"US", us(2, false)),
            ],
        );
        let e = err(&f, &Limits::DEFAULT);
        assert!(e.contains("number of frames of 9999 exceeds the limit of 4096"), "{e}");
        f = file(IMPLICIT_LE, &[((0x0028, 0x0008), b"IS", b"x2".to_vec())]);
        assert!(err(&f, &Limits::DEFAULT).contains("NumberOfFrames (0028,0008) is not a number"));
        let mut no_ts = vec![0u8; 128];
        no_ts.extend(b"DICM");
        assert!(err(&no_ts, &Limits::DEFAULT).contains("no transfer syntax"));
    }
}
