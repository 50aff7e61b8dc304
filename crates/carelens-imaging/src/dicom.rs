//! DICOM Part 10 decoding with dicom-rs, behind the [`scan_dicom`] guard.
//!
//! [`DicomFile::open`] pre-scans the bytes (declared lengths, geometry and decoded size against
//! [`Limits`]; a deflated dataset is inflated with a cap and scanned too), then parses them with
//! dicom-rs. [`DicomFile::frame`] decodes one frame into an [`Image`] of `f32` samples with the
//! modality LUT (rescale slope/intercept: CT in Hounsfield units) applied, photometric
//! interpretation resolved (YBR → RGB, palette colour → RGB) and the file's VOI (window or
//! VOI LUT) attached for [`Intensity::Dicom`](crate::Intensity::Dicom).

use std::io::Cursor;
use std::path::{Path, PathBuf};

use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use dicom_pixeldata::{DecodedPixelData, PixelDecoder};
use ndarray::Array3;

use crate::raster::{Image, Photometric, Voi};
use crate::{DicomScan, ImagingError, Limits, Result, scan_dicom};

/// What the header says about an instance: identity, patient link and geometry.
/// Carries identifiers (patient ID), so it is never logged whole.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct DicomInfo {
    pub transfer_syntax: String,
    pub transfer_syntax_name: String,
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    pub patient_id: Option<String>,
    /// Issuer of Patient ID (0010,0021): which registry the ID comes from.
    pub issuer_of_patient_id: Option<String>,
    pub modality: String,
    pub body_part: Option<String>,
    /// DICOM DA, `YYYYMMDD`.
    pub study_date: Option<String>,
    pub series_number: Option<i32>,
    pub instance_number: Option<i32>,
    /// Position along the slice normal (ImagePositionPatient z, else SliceLocation).
    pub slice_position: Option<f64>,
    pub rows: u32,
    pub columns: u32,
    pub frames: u32,
    pub samples_per_pixel: u16,
    pub bits_allocated: u16,
    pub photometric: String,
    /// Burned In Annotation (0028,0301): `Some(true)` means text is burned into the pixels.
    pub burned_in_annotation: Option<bool>,
}

/// An opened, pre-scanned DICOM file.
pub struct DicomFile {
    path: PathBuf,
    obj: DefaultDicomObject,
    pub info: DicomInfo,
    pub scan: DicomScan,
}

impl std::fmt::Debug for DicomFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DicomFile")
            .field("path", &self.path)
            .field("sop_instance_uid", &self.info.sop_instance_uid)
            .finish()
    }
}

const MEDIA_STORAGE_DIRECTORY: &str = "1.2.840.10008.1.3.10";
const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";
/// JPEG-LS lossless and near-lossless: decoded by [`crate::jpegls`], not by dicom-rs.
const JPEG_LS: [&str; 2] = ["1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"];
const JPEG_EXTENDED: &str = "1.2.840.10008.1.2.4.51";
const UNCOMPRESSED: [&str; 3] = ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"];

/// True when the bytes look like DICOM Part 10 (the `DICM` magic at byte 128).
pub fn is_dicom(bytes: &[u8]) -> bool {
    bytes.get(128..132) == Some(b"DICM")
}

impl DicomFile {
    /// Pre-scans and parses `bytes`; `path` names the file in errors.
    pub fn open(path: &Path, bytes: &[u8], limits: &Limits) -> Result<Self> {
        let scan = scan_dicom(path, bytes, limits)?;
        let ts = dicom_transfer_syntax_registry::TransferSyntaxRegistry;
        use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
        let Some(syntax) = ts.get(&scan.transfer_syntax) else {
            return Err(ImagingError::UnsupportedTransferSyntax {
                path: path.to_path_buf(),
                uid: scan.transfer_syntax.clone(),
                name: "unknown transfer syntax".into(),
            });
        };
        let syntax_name = syntax.name().to_owned();
        let obj = OpenFileOptions::new()
            .read_preamble(ReadPreamble::Always)
            .from_reader(Cursor::new(bytes))
            .map_err(|e| decode_err(path, format!("cannot parse the dataset: {e}")))?;
        let info = read_info(&obj, &scan, &syntax_name);
        let file = Self { path: path.to_path_buf(), obj, info, scan };
        let decoded_here =
            file.info.transfer_syntax == RLE_LOSSLESS || JPEG_LS.contains(&file.info.transfer_syntax.as_str());
        if file.has_pixels() && !syntax.can_decode_all() && !decoded_here {
            return Err(file.unsupported_syntax());
        }
        Ok(file)
    }

    /// Whether this is a DICOMDIR (Media Storage Directory), an index of other files.
    pub fn is_dicomdir(&self) -> bool {
        self.info.sop_class_uid == MEDIA_STORAGE_DIRECTORY
    }

    /// The files a DICOMDIR references, relative to its folder. Components that would
    /// leave the folder (`..`, absolute paths) are refused.
    pub fn dicomdir_files(&self) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        let Some(records) =
            self.obj.element_opt(tags::DIRECTORY_RECORD_SEQUENCE).ok().flatten().and_then(|e| e.items())
        else {
            return Ok(out);
        };
        for record in records {
            let Some(id) = record.element_opt(tags::REFERENCED_FILE_ID).ok().flatten() else { continue };
            let parts: Vec<String> = match id.to_multi_str() {
                Ok(p) => p.iter().map(|s| s.trim().to_owned()).collect(),
                Err(_) => continue,
            };
            let mut rel = PathBuf::new();
            for part in &parts {
                if part.is_empty() || part == "." || part == ".." || part.contains(['/', '\\']) {
                    return Err(decode_err(
                        &self.path,
                        format!("DICOMDIR references an unsafe path component {part:?}"),
                    ));
                }
                rel.push(part);
            }
            if !rel.as_os_str().is_empty() {
                out.push(rel);
            }
        }
        Ok(out)
    }

    /// Whether the instance carries (7FE0,0010) pixel data (reports and plans do not).
    pub fn has_pixels(&self) -> bool {
        self.obj.element_opt(tags::PIXEL_DATA).ok().flatten().is_some()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn object(&self) -> &DefaultDicomObject {
        &self.obj
    }

    fn unsupported_syntax(&self) -> ImagingError {
        ImagingError::UnsupportedTransferSyntax {
            path: self.path.clone(),
            uid: self.info.transfer_syntax.clone(),
            name: self.info.transfer_syntax_name.clone(),
        }
    }

    /// Decodes frame `index` (0-based).
    pub fn frame(&self, index: u32) -> Result<Image> {
        if !self.has_pixels() {
            return Err(ImagingError::Unsupported {
                path: self.path.clone(),
                what: format!("instance without pixel data (modality {:?})", self.info.modality),
            });
        }
        if index >= self.info.frames.max(1) {
            return Err(decode_err(
                &self.path,
                format!("frame {index} requested but the file has {}", self.info.frames),
            ));
        }
        if self.info.transfer_syntax == RLE_LOSSLESS {
            let raw = self.rle_frame(index)?;
            return self.convert(&raw, index);
        }
        if JPEG_LS.contains(&self.info.transfer_syntax.as_str()) {
            let raw = self.jpegls_frame(index)?;
            return self.convert(&raw, index);
        }
        if self.info.transfer_syntax == JPEG_EXTENDED && self.bits_stored() > 8 {
            return Err(ImagingError::UnsupportedTransferSyntax {
                path: self.path.clone(),
                uid: self.info.transfer_syntax.clone(),
                name: format!(
                    "{}, {}-bit (the JPEG decoder handles 8-bit only)",
                    self.info.transfer_syntax_name,
                    self.bits_stored()
                ),
            });
        }
        let px =
            if self.info.frames <= 1 { self.obj.decode_pixel_data() } else { self.obj.decode_pixel_data_frame(index) }
                .map_err(|e| {
                    let msg = e.to_string();
                    if msg.contains("nsupported") {
                        ImagingError::UnsupportedTransferSyntax {
                            path: self.path.clone(),
                            uid: self.info.transfer_syntax.clone(),
                            name: format!("{} ({msg})", self.info.transfer_syntax_name),
                        }
                    } else {
                        decode_err(&self.path, format!("{} pixel data: {msg}", self.info.transfer_syntax_name))
                    }
                })?;
        let raw = Raw {
            data: std::borrow::Cow::Borrowed(px.data()),
            rows: px.rows() as usize,
            cols: px.columns() as usize,
            spp: usize::from(px.samples_per_pixel()),
            bits_allocated: px.bits_allocated(),
            bits_stored: px.bits_stored(),
            signed: px.pixel_representation() == dicom_pixeldata::PixelRepresentation::Signed,
            planar: px.planar_configuration() == dicom_pixeldata::PlanarConfiguration::PixelFirst,
            photometric: px.photometric_interpretation().as_str().trim().to_ascii_uppercase(),
            rescale: px
                .rescale()
                .ok()
                .and_then(|r| r.get(index as usize).or(r.first()).copied())
                .map(|r| (r.slope as f32, r.intercept as f32)),
            voi: voi_of(&px, index),
        };
        self.convert(&raw, index)
    }

    fn bits_stored(&self) -> u16 {
        self.int(tags::BITS_STORED).unwrap_or(self.info.bits_allocated)
    }

    fn int(&self, tag: dicom_core::Tag) -> Option<u16> {
        self.obj.element_opt(tag).ok().flatten().and_then(|e| e.to_int::<u16>().ok())
    }

    fn float(&self, tag: dicom_core::Tag) -> Option<f64> {
        self.obj
            .element_opt(tag)
            .ok()
            .flatten()
            .and_then(|e| e.to_multi_float64().ok())
            .and_then(|v| v.first().copied())
    }

    /// The bytes of frame `index` of encapsulated pixel data: one fragment per frame, all
    /// fragments for a single frame, or (JPEG family) fragments grouped by the SOI marker
    /// that starts each frame.
    fn encapsulated_frame(&self, index: u32) -> std::result::Result<std::borrow::Cow<'_, [u8]>, String> {
        let Some(dicom_core::value::Value::PixelSequence(seq)) =
            self.obj.element_opt(tags::PIXEL_DATA).ok().flatten().map(|e| e.value())
        else {
            return Err("pixel data is not encapsulated".into());
        };
        let fragments = seq.fragments();
        let frames = self.info.frames.max(1) as usize;
        if fragments.len() == frames {
            return Ok(std::borrow::Cow::Borrowed(&fragments[index as usize]));
        }
        if frames == 1 {
            return Ok(std::borrow::Cow::Owned(fragments.iter().flatten().copied().collect()));
        }
        if self.info.transfer_syntax != RLE_LOSSLESS {
            let starts: Vec<usize> =
                (0..fragments.len()).filter(|&i| fragments[i].starts_with(&[0xFF, 0xD8])).collect();
            if starts.len() == frames && starts.first() == Some(&0) {
                let from = starts[index as usize];
                let to = starts.get(index as usize + 1).copied().unwrap_or(fragments.len());
                return Ok(std::borrow::Cow::Owned(fragments[from..to].iter().flatten().copied().collect()));
            }
        }
        Err(format!("{} fragments for {frames} frames", fragments.len()))
    }

    /// JPEG-LS (PS3.5 A.4.3), decoded by [`crate::jpegls`]: samples come back as P-bit
    /// unsigned values, pixel-interleaved, stored in the file's BitsAllocated.
    fn jpegls_frame(&self, index: u32) -> Result<Raw<'static>> {
        let err = |d: String| decode_err(&self.path, format!("JPEG-LS frame {index}: {d}"));
        let fragment = self.encapsulated_frame(index).map_err(err)?;
        let (rows, cols) = (self.info.rows as usize, self.info.columns as usize);
        let spp = usize::from(self.info.samples_per_pixel);
        let frame =
            crate::jpegls::decode(&fragment, crate::jpegls::Expect { rows, cols, components: spp }).map_err(err)?;
        let data: Vec<u8> = match self.info.bits_allocated {
            8 if frame.precision <= 8 => frame.samples.iter().map(|&v| v as u8).collect(),
            16 => frame.samples.iter().flat_map(|v| v.to_le_bytes()).collect(),
            b => {
                return Err(err(format!("{}-bit samples in BitsAllocated {b}", frame.precision)));
            }
        };
        Ok(self.raw_from_header(data))
    }

    /// Decoded samples (pixel-interleaved, little-endian) described by the file's header:
    /// geometry, bits, sign, photometric interpretation, rescale and window.
    fn raw_from_header(&self, data: Vec<u8>) -> Raw<'static> {
        let window = self.float(tags::WINDOW_CENTER).zip(self.float(tags::WINDOW_WIDTH));
        Raw {
            data: std::borrow::Cow::Owned(data),
            rows: self.info.rows as usize,
            cols: self.info.columns as usize,
            spp: usize::from(self.info.samples_per_pixel),
            bits_allocated: self.info.bits_allocated,
            bits_stored: self.bits_stored(),
            signed: self.int(tags::PIXEL_REPRESENTATION) == Some(1),
            planar: false,
            photometric: self.info.photometric.to_ascii_uppercase(),
            rescale: Some((
                self.float(tags::RESCALE_SLOPE).unwrap_or(1.0) as f32,
                self.float(tags::RESCALE_INTERCEPT).unwrap_or(0.0) as f32,
            )),
            voi: window.filter(|(_, w)| *w > 0.0).map(|(c, w)| Voi::Window { center: c as f32, width: w as f32 }),
        }
    }

    /// RLE Lossless (PS3.5 Annex G), decoded here: dicom-rs refuses 32-bit samples. Each frame
    /// is one fragment holding a 64-byte header and one PackBits segment per byte plane
    /// (most significant first) per sample.
    fn rle_frame(&self, index: u32) -> Result<Raw<'static>> {
        let err = |d: String| decode_err(&self.path, format!("RLE Lossless frame {index}: {d}"));
        let fragment = self.encapsulated_frame(index).map_err(err)?;
        let fragment: &[u8] = &fragment;
        let (rows, cols) = (self.info.rows as usize, self.info.columns as usize);
        let spp = usize::from(self.info.samples_per_pixel);
        let bytes_per = match self.info.bits_allocated {
            8 => 1,
            16 => 2,
            32 => 4,
            b => return Err(self.unsupported(format!("RLE with BitsAllocated {b}"))),
        };
        let header = fragment.get(..64).ok_or_else(|| err("fragment shorter than the 64-byte header".into()))?;
        let word = |i: usize| {
            u32::from_le_bytes([header[i * 4], header[i * 4 + 1], header[i * 4 + 2], header[i * 4 + 3]]) as usize
        };
        let segments = word(0);
        if segments != spp * bytes_per {
            return Err(err(format!("{segments} segments, {} expected", spp * bytes_per)));
        }
        let plane = rows * cols;
        let mut out = vec![0u8; plane * spp * bytes_per];
        let mut seg_buf = Vec::with_capacity(plane);
        for s in 0..segments {
            let start = word(s + 1);
            let end = if s + 1 < segments { word(s + 2) } else { fragment.len() };
            let src =
                fragment.get(start..end.max(start)).ok_or_else(|| err(format!("segment {s} offsets out of range")))?;
            packbits(src, plane, &mut seg_buf).map_err(|d| err(format!("segment {s}: {d}")))?;
            let (sample, byte_from_msb) = (s / bytes_per, s % bytes_per);
            let byte = bytes_per - 1 - byte_from_msb;
            for (p, &v) in seg_buf.iter().enumerate() {
                out[(p * spp + sample) * bytes_per + byte] = v;
            }
        }
        Ok(self.raw_from_header(out))
    }

    /// Decodes every frame (multi-frame files can be large: prefer [`frame`](Self::frame)).
    pub fn frames(&self) -> Result<Vec<Image>> {
        (0..self.info.frames.max(1)).map(|i| self.frame(i)).collect()
    }

    fn convert(&self, raw: &Raw<'_>, frame: u32) -> Result<Image> {
        let (rows, cols, spp) = (raw.rows, raw.cols, raw.spp);
        let bits_allocated = raw.bits_allocated;
        let bits_stored = raw.bits_stored.clamp(1, 32);
        let signed = raw.signed;
        let n = rows * cols * spp;
        let data: &[u8] = &raw.data;
        let bytes_per = match bits_allocated {
            1 | 8 => 1,
            16 => 2,
            32 => 4,
            other => return Err(self.unsupported(format!("BitsAllocated {other}"))),
        };
        // Native big-endian 32-bit words arrive as two byte-swapped 16-bit halves.
        let swap_words = bits_allocated == 32
            && self.info.transfer_syntax == UNCOMPRESSED[2]
            && matches!(raw.data, std::borrow::Cow::Borrowed(_))
            && matches!(
                self.obj.element_opt(tags::PIXEL_DATA).ok().flatten().map(|e| e.value()),
                Some(dicom_core::value::Value::Primitive(dicom_core::PrimitiveValue::U16(_)))
            );
        // 4:2:2 subsampled native YBR: two luma samples share one Cb/Cr pair.
        let pi = raw.photometric.as_str();
        let ybr422 = pi == "YBR_FULL_422" && UNCOMPRESSED.contains(&self.info.transfer_syntax.as_str());
        let needed = if ybr422 { rows * cols * 2 } else { n } * bytes_per;
        if data.len() < needed {
            return Err(decode_err(
                &self.path,
                format!("frame {frame}: decoded pixel data has {} bytes, {needed} expected", data.len()),
            ));
        }
        let sample = |i: usize| -> f32 {
            let off = i * bytes_per;
            let raw: u32 = match bytes_per {
                1 => u32::from(data[off]),
                2 => u32::from(u16::from_le_bytes([data[off], data[off + 1]])),
                _ => {
                    let v = u32::from_le_bytes([data[off], data[off + 1], data[off + 2], data[off + 3]]);
                    if swap_words { v.rotate_left(16) } else { v }
                }
            };
            if bits_allocated == 1 {
                return if raw > 0 { 1.0 } else { 0.0 };
            }
            let stored = u32::from(bits_stored).min(u32::from(bits_allocated));
            let mask = if stored >= 32 { u32::MAX } else { (1u32 << stored) - 1 };
            let v = raw & mask;
            if signed && stored < 32 && v & (1 << (stored - 1)) != 0 {
                (i64::from(v) - (1i64 << stored)) as f32
            } else if signed && stored >= 32 {
                v as i32 as f32
            } else {
                v as f32
            }
        };
        let planar = spp > 1 && raw.planar;
        let mut pixels;
        let photometric;
        let palette = pi == "PALETTE COLOR";
        if palette {
            let lut = self.palette()?;
            pixels = Array3::<f32>::zeros((3, rows, cols));
            for y in 0..rows {
                for x in 0..cols {
                    let (r, g, b) = lut.map(sample(y * cols + x));
                    pixels[[0, y, x]] = r;
                    pixels[[1, y, x]] = g;
                    pixels[[2, y, x]] = b;
                }
            }
            photometric = Photometric::Rgb;
        } else if spp == 1 {
            let (slope, intercept) = raw.rescale.unwrap_or((1.0, 0.0));
            let stored = u32::from(bits_stored).min(u32::from(bits_allocated));
            // Fast paths for the common 8/16-bit layouts; the general sampler otherwise.
            let values: Vec<f32> = match (bits_allocated, signed) {
                (16, false) => {
                    let mask = ((1u32 << stored) - 1) as u16;
                    data[..n * 2]
                        .chunks_exact(2)
                        .map(|c| f32::from(u16::from_le_bytes([c[0], c[1]]) & mask) * slope + intercept)
                        .collect()
                }
                (16, true) => {
                    let shift = 16 - stored.clamp(1, 16);
                    data[..n * 2]
                        .chunks_exact(2)
                        .map(|c| f32::from((i16::from_le_bytes([c[0], c[1]]) << shift) >> shift) * slope + intercept)
                        .collect()
                }
                (8, false) => data[..n].iter().map(|&b| f32::from(b) * slope + intercept).collect(),
                _ => (0..n).map(|i| sample(i) * slope + intercept).collect(),
            };
            pixels = Array3::from_shape_vec((1, rows, cols), values)
                .map_err(|e| decode_err(&self.path, format!("frame {frame}: {e}")))?;
            photometric = if pi == "MONOCHROME1" { Photometric::Monochrome1 } else { Photometric::Monochrome2 };
        } else if spp == 3 {
            let idx = |c: usize, p: usize| if planar { c * rows * cols + p } else { p * 3 + c };
            pixels = Array3::<f32>::zeros((3, rows, cols));
            let full = ((1u64 << bits_stored.min(16)) - 1) as f32;
            for y in 0..rows {
                for x in 0..cols {
                    let p = y * cols + x;
                    let (a, b, c) = if ybr422 {
                        let pair = p / 2 * 4;
                        (sample(pair + p % 2), sample(pair + 2), sample(pair + 3))
                    } else {
                        (sample(idx(0, p)), sample(idx(1, p)), sample(idx(2, p)))
                    };
                    let (r, g, bl) = if pi.starts_with("YBR_FULL") { ybr_to_rgb(a, b, c, full) } else { (a, b, c) };
                    pixels[[0, y, x]] = r;
                    pixels[[1, y, x]] = g;
                    pixels[[2, y, x]] = bl;
                }
            }
            photometric = Photometric::Rgb;
        } else {
            return Err(self.unsupported(format!("SamplesPerPixel {spp}")));
        }
        let voi = if photometric == Photometric::Rgb { None } else { raw.voi.clone() };
        Ok(Image { pixels, photometric, bits_stored: bits_stored.min(32) as u8, voi })
    }

    fn unsupported(&self, what: String) -> ImagingError {
        ImagingError::Unsupported { path: self.path.clone(), what }
    }

    fn palette(&self) -> Result<Palette> {
        let channel = |desc: dicom_core::Tag, data: dicom_core::Tag| -> Result<(i64, Vec<f32>)> {
            let d: Vec<i64> = self
                .obj
                .element_opt(desc)
                .ok()
                .flatten()
                .and_then(|e| e.to_multi_int::<i64>().ok())
                .filter(|d| d.len() == 3)
                .ok_or_else(|| {
                    self.unsupported("palette colour without a LUT descriptor (segmented palettes)".into())
                })?;
            let entries = if d[0] == 0 { 65_536 } else { d[0].rem_euclid(65_536) } as usize;
            let first = d[1];
            let bits = d[2];
            let raw = self
                .obj
                .element_opt(data)
                .ok()
                .flatten()
                .and_then(|e| e.to_bytes().ok().map(|b| b.into_owned()))
                .ok_or_else(|| self.unsupported("palette colour without LUT data".into()))?;
            // Entries are 16-bit words; 8-bit tables hold 0–255 per word (or, in old files,
            // two entries packed per word). Output is scaled to 0–255.
            let words: Vec<u16> = raw.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
            let values: Vec<f32> = if bits <= 8 && words.len() * 2 == entries {
                raw.iter().map(|&v| f32::from(v)).collect()
            } else if bits <= 8 {
                words.iter().map(|&v| f32::from(v.min(255))).collect()
            } else {
                words.iter().map(|&v| f32::from(v) / 257.0).collect()
            };
            if values.len() < entries || entries == 0 {
                return Err(decode_err(
                    &self.path,
                    format!("palette LUT has {} entries, {entries} declared", values.len()),
                ));
            }
            Ok((first, values.into_iter().take(entries).collect()))
        };
        let (first, red) =
            channel(tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR, tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA)?;
        let (_, green) =
            channel(tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR, tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA)?;
        let (_, blue) =
            channel(tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR, tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA)?;
        Ok(Palette { first, red, green, blue })
    }
}

/// One frame of decoded samples in native (little-endian) byte order, with what is needed to
/// interpret them.
struct Raw<'a> {
    data: std::borrow::Cow<'a, [u8]>,
    rows: usize,
    cols: usize,
    spp: usize,
    bits_allocated: u16,
    bits_stored: u16,
    signed: bool,
    planar: bool,
    photometric: String,
    /// (slope, intercept)
    rescale: Option<(f32, f32)>,
    voi: Option<Voi>,
}

/// PackBits (PS3.5 G.3.1) into exactly `len` bytes.
fn packbits(src: &[u8], len: usize, out: &mut Vec<u8>) -> std::result::Result<(), String> {
    out.clear();
    let mut i = 0;
    while out.len() < len {
        let Some(&n) = src.get(i) else {
            return Err(format!("ends after {} of {len} bytes", out.len()));
        };
        i += 1;
        let n = n as i8;
        if n >= 0 {
            let count = n as usize + 1;
            let lit = src.get(i..i + count).ok_or_else(|| format!("literal run past the end at byte {i}"))?;
            out.extend_from_slice(&lit[..count.min(len - out.len())]);
            i += count;
        } else if n != -128 {
            let count = (1 - i32::from(n)) as usize;
            let &v = src.get(i).ok_or_else(|| format!("replicate run past the end at byte {i}"))?;
            out.extend(std::iter::repeat_n(v, count.min(len - out.len())));
            i += 1;
        }
    }
    Ok(())
}

/// Palette colour LUTs, scaled to 0–255.
struct Palette {
    first: i64,
    red: Vec<f32>,
    green: Vec<f32>,
    blue: Vec<f32>,
}

impl Palette {
    fn map(&self, v: f32) -> (f32, f32, f32) {
        let at = |t: &[f32]| {
            let i = (v as i64 - self.first).clamp(0, t.len() as i64 - 1) as usize;
            t[i]
        };
        (at(&self.red), at(&self.green), at(&self.blue))
    }
}

/// ITU-R BT.601 full-range YCbCr → RGB (PS3.3 C.7.6.3.1.2), clamped to the sample range.
fn ybr_to_rgb(y: f32, cb: f32, cr: f32, full: f32) -> (f32, f32, f32) {
    let half = (full + 1.0) / 2.0;
    let (cb, cr) = (cb - half, cr - half);
    let r = y + 1.402 * cr;
    let g = y - 0.344_136 * cb - 0.714_136 * cr;
    let b = y + 1.772 * cb;
    let c = |v: f32| v.round().clamp(0.0, full);
    (c(r), c(g), c(b))
}

fn voi_of(px: &DecodedPixelData<'_>, frame: u32) -> Option<Voi> {
    let pick = |n: usize| if n > 1 { (frame as usize).min(n - 1) } else { 0 };
    if let Ok(Some(luts)) = px.voi_lut_sequence()
        && let Some(lut) = luts.first()
        && !lut.data.is_empty()
    {
        let max = ((1u64 << lut.bits_stored.clamp(1, 16)) - 1) as f32;
        return Some(Voi::Lut {
            first: lut.min_pixel_value as f32,
            table: lut.data.iter().map(|&v| f32::from(v) / max).collect(),
        });
    }
    if let Ok(Some(windows)) = px.window()
        && let Some(w) = windows.get(pick(windows.len()))
        && w.width > 0.0
        && w.width.is_finite()
        && w.center.is_finite()
    {
        return Some(Voi::Window { center: w.center as f32, width: w.width as f32 });
    }
    None
}

fn decode_err(path: &Path, detail: String) -> ImagingError {
    ImagingError::Decode { path: path.to_path_buf(), format: "DICOM", detail }
}

fn read_info(obj: &DefaultDicomObject, scan: &DicomScan, syntax_name: &str) -> DicomInfo {
    let text = |tag| {
        obj.element_opt(tag)
            .ok()
            .flatten()
            .and_then(|e| e.to_str().ok().map(|s| s.trim_matches(['\0', ' ']).to_owned()))
            .filter(|s| !s.is_empty())
    };
    let int = |tag| text(tag).and_then(|s| s.parse::<i32>().ok());
    let floats = |tag| obj.element_opt(tag).ok().flatten().and_then(|e| e.to_multi_float64().ok());
    let slice_position = floats(tags::IMAGE_POSITION_PATIENT)
        .and_then(|v| v.get(2).copied())
        .or_else(|| floats(tags::SLICE_LOCATION).and_then(|v| v.first().copied()));
    DicomInfo {
        transfer_syntax: scan.transfer_syntax.clone(),
        transfer_syntax_name: syntax_name.to_owned(),
        sop_class_uid: text(tags::SOP_CLASS_UID)
            .unwrap_or_else(|| obj.meta().media_storage_sop_class_uid.trim_end_matches('\0').to_owned()),
        sop_instance_uid: text(tags::SOP_INSTANCE_UID)
            .unwrap_or_else(|| obj.meta().media_storage_sop_instance_uid.trim_end_matches('\0').to_owned()),
        study_instance_uid: text(tags::STUDY_INSTANCE_UID).unwrap_or_default(),
        series_instance_uid: text(tags::SERIES_INSTANCE_UID).unwrap_or_default(),
        patient_id: text(tags::PATIENT_ID),
        issuer_of_patient_id: text(tags::ISSUER_OF_PATIENT_ID),
        modality: text(tags::MODALITY).unwrap_or_default(),
        body_part: text(tags::BODY_PART_EXAMINED),
        study_date: text(tags::STUDY_DATE),
        series_number: int(tags::SERIES_NUMBER),
        instance_number: int(tags::INSTANCE_NUMBER),
        slice_position,
        rows: scan.rows,
        columns: scan.columns,
        frames: scan.frames.max(1),
        samples_per_pixel: scan.samples_per_pixel.max(1) as u16,
        bits_allocated: scan.bits_allocated as u16,
        photometric: text(tags::PHOTOMETRIC_INTERPRETATION).unwrap_or_default(),
        burned_in_annotation: text(tags::BURNED_IN_ANNOTATION).map(|s| s.eq_ignore_ascii_case("YES")),
    }
}
