//! Deterministic, serialisable preprocessing: the same [`PreprocessSpec`] turns an [`Image`]
//! into the same tensor at training and at inference. The spec is saved with each model.

use ndarray::{Array2, Array3};
use serde::{Deserialize, Serialize};

use crate::raster::{Image, Photometric, Voi};
use crate::{ImagingError, Result};

/// How source values map to [0, 1] before resizing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Intensity {
    /// The image's own minimum and maximum.
    MinMax,
    /// A fixed range, e.g. 0–255 for 8-bit exports.
    Range { low: f32, high: f32 },
    /// A DICOM-style window (CT presets: lung −600/1500, mediastinum 50/350, brain 40/80,
    /// bone 400/1800, abdomen 40/400).
    Window { center: f32, width: f32 },
    /// Robust percentiles (MR): values below/above the percentiles clip.
    Percentile { low: f32, high: f32 },
    /// The file's own VOI: its VOI LUT, else its window center/width (DICOM); min–max when
    /// the image carries neither.
    Dicom,
}

impl Intensity {
    pub const LUNG: Intensity = Intensity::Window { center: -600.0, width: 1500.0 };
    pub const MEDIASTINUM: Intensity = Intensity::Window { center: 50.0, width: 350.0 };
    pub const BRAIN: Intensity = Intensity::Window { center: 40.0, width: 80.0 };
    pub const BONE: Intensity = Intensity::Window { center: 400.0, width: 1800.0 };
    pub const ABDOMEN: Intensity = Intensity::Window { center: 40.0, width: 400.0 };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResizeFilter {
    /// Bilinear with an antialiasing support that widens when shrinking.
    Triangle,
    Lanczos3,
    Nearest,
}

/// Everything needed to reproduce a model's input exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreprocessSpec {
    /// Bumped whenever `apply` changes behaviour; a model trained under another version is refused.
    pub version: u32,
    pub height: u32,
    pub width: u32,
    /// 1 (grayscale) or 3 (grayscale replicated, for ImageNet-shaped networks).
    pub channels: u8,
    pub intensity: Intensity,
    /// Invert after mapping (on top of MONOCHROME1's automatic inversion).
    pub invert: bool,
    pub resize: ResizeFilter,
    /// Applied last: (x − mean) / std.
    pub mean: f32,
    pub std: f32,
}

impl PreprocessSpec {
    /// 2: own separable resampler (1 used `image::imageops::resize`).
    pub const VERSION: u32 = 2;

    /// A 1-channel spec for 8-bit radiographs (MedMNIST, PNG exports).
    pub fn xray(size: u32) -> Self {
        Self {
            version: Self::VERSION,
            height: size,
            width: size,
            channels: 1,
            intensity: Intensity::Range { low: 0.0, high: 255.0 },
            invert: false,
            resize: ResizeFilter::Triangle,
            mean: 0.5,
            std: 0.25,
        }
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(ImagingError::Spec(m.into()));
        if self.version != Self::VERSION {
            return bad(&format!(
                "version {} is not supported by this build (supports {})",
                self.version,
                Self::VERSION
            ));
        }
        if !(1..=4096).contains(&self.height) || !(1..=4096).contains(&self.width) {
            return bad("height and width must be within 1..=4096");
        }
        if self.channels != 1 && self.channels != 3 {
            return bad("channels must be 1 or 3");
        }
        if !(self.std.is_finite() && self.std > 0.0 && self.mean.is_finite()) {
            return bad("std must be positive and mean finite");
        }
        match self.intensity {
            Intensity::Range { low, high } if high.partial_cmp(&low) != Some(std::cmp::Ordering::Greater) => {
                bad("intensity range: high must exceed low")
            }
            Intensity::Window { width, .. } if width.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) => {
                bad("window width must be positive")
            }
            Intensity::Percentile { low, high } if !(0.0 <= low && low < high && high <= 100.0) => {
                bad("percentiles must satisfy 0 <= low < high <= 100")
            }
            _ => Ok(()),
        }
    }

    /// Image → tensor of shape channels × height × width.
    pub fn apply(&self, image: &Image) -> Result<Array3<f32>> {
        self.validate()?;
        let gray = to_gray(image);
        let invert = self.invert ^ (image.photometric == Photometric::Monochrome1);
        if self.intensity == Intensity::Dicom
            && let Some(Voi::Lut { first, table }) = &image.voi
            && !table.is_empty()
        {
            let last = table.len() as f32 - 1.0;
            let mapped = gray.mapv(|v| {
                let x = table[(v - first).round().clamp(0.0, last) as usize].clamp(0.0, 1.0);
                if invert { 1.0 - x } else { x }
            });
            return Ok(self.finish(&mapped));
        }
        let (low, high) = match self.intensity {
            Intensity::Dicom => match image.voi {
                Some(Voi::Window { center, width }) => (center - width / 2.0, center + width / 2.0),
                _ => min_max(&gray.view()),
            },
            Intensity::MinMax => min_max(&gray.view()),
            Intensity::Range { low, high } => (low, high),
            Intensity::Window { center, width } => (center - width / 2.0, center + width / 2.0),
            Intensity::Percentile { low, high } => {
                let mut v: Vec<f32> = gray.iter().copied().filter(|x| x.is_finite()).collect();
                v.sort_by(f32::total_cmp);
                let at = |p: f32| v.get(((p / 100.0) * (v.len().saturating_sub(1)) as f32).round() as usize).copied();
                let (lo, hi) = (at(low).unwrap_or(0.0), at(high).unwrap_or(1.0));
                (lo, if hi > lo { hi } else { lo + 1.0 })
            }
        };
        let mapped = gray.mapv(|v| {
            let x = ((v - low) / (high - low)).clamp(0.0, 1.0);
            if invert { 1.0 - x } else { x }
        });
        Ok(self.finish(&mapped))
    }

    /// Resize, normalise and lay out channels.
    fn finish(&self, mapped: &Array2<f32>) -> Array3<f32> {
        let resized = resize(mapped, self.height, self.width, self.resize);
        let normalised = resized.mapv(|x| (x - self.mean) / self.std);
        let (h, w) = normalised.dim();
        let mut out = Array3::zeros((usize::from(self.channels), h, w));
        for c in 0..usize::from(self.channels) {
            out.index_axis_mut(ndarray::Axis(0), c).assign(&normalised);
        }
        out
    }
}

fn min_max(gray: &ndarray::ArrayView2<'_, f32>) -> (f32, f32) {
    let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
    for &v in gray {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    (lo, if hi > lo { hi } else { lo + 1.0 })
}

/// ITU-R BT.601 luma for RGB; the first channel otherwise.
fn to_gray(image: &Image) -> ndarray::CowArray<'_, f32, ndarray::Ix2> {
    let p = &image.pixels;
    if image.photometric == Photometric::Rgb && p.shape()[0] >= 3 {
        let (r, g, b) =
            (p.index_axis(ndarray::Axis(0), 0), p.index_axis(ndarray::Axis(0), 1), p.index_axis(ndarray::Axis(0), 2));
        ndarray::Zip::from(&r).and(&g).and(&b).map_collect(|&r, &g, &b| 0.299 * r + 0.587 * g + 0.114 * b).into()
    } else {
        // A view: no copy of a large single-channel image.
        p.index_axis(ndarray::Axis(0), 0).into()
    }
}

/// Separable resampling with precomputed weights (as Pillow does): when shrinking, the filter
/// support widens by the scale factor, so every source pixel contributes (antialiasing).
/// Our own code rather than `image::imageops::resize`, which goes through a 4-channel
/// intermediate for `f32` and was 6x slower, and whose output could change with its version.
fn resize(a: &Array2<f32>, height: u32, width: u32, filter: ResizeFilter) -> Array2<f32> {
    let (h, w) = a.dim();
    let (oh, ow) = (height as usize, width as usize);
    if (h, w) == (oh, ow) {
        return a.clone();
    }
    let src = a.as_standard_layout();
    let src = src.as_slice().unwrap_or(&[]);
    // Horizontal pass: h × ow.
    let wx = Weights::new(w, ow, filter);
    let mut tmp = vec![0f32; h * ow];
    for y in 0..h {
        let row = &src[y * w..(y + 1) * w];
        let out = &mut tmp[y * ow..(y + 1) * ow];
        for (x, o) in out.iter_mut().enumerate() {
            let (start, ws) = wx.at(x);
            *o = row[start..start + ws.len()].iter().zip(ws).map(|(p, k)| p * k).sum();
        }
    }
    // Vertical pass: oh × ow, row by row (contiguous, vectorisable).
    let wy = Weights::new(h, oh, filter);
    let mut out = vec![0f32; oh * ow];
    for y in 0..oh {
        let (start, ws) = wy.at(y);
        let dst = &mut out[y * ow..(y + 1) * ow];
        for (j, k) in ws.iter().enumerate() {
            let row = &tmp[(start + j) * ow..(start + j + 1) * ow];
            for (d, s) in dst.iter_mut().zip(row) {
                *d += k * s;
            }
        }
    }
    Array2::from_shape_vec((oh, ow), out).unwrap_or_else(|_| Array2::zeros((oh, ow)))
}

/// For each output index: the first source index and the normalised weights from there.
struct Weights {
    start: Vec<usize>,
    offsets: Vec<usize>,
    weights: Vec<f32>,
}

impl Weights {
    fn new(in_len: usize, out_len: usize, filter: ResizeFilter) -> Self {
        let scale = in_len as f64 / out_len as f64;
        let stretch = scale.max(1.0);
        let (support, kernel): (f64, fn(f64) -> f64) = match filter {
            ResizeFilter::Triangle => (1.0, |x| (1.0 - x.abs()).max(0.0)),
            ResizeFilter::Lanczos3 => (3.0, |x| {
                if x == 0.0 {
                    1.0
                } else if x.abs() < 3.0 {
                    let px = std::f64::consts::PI * x;
                    3.0 * px.sin() * (px / 3.0).sin() / (px * px)
                } else {
                    0.0
                }
            }),
            ResizeFilter::Nearest => (0.0, |_| 1.0),
        };
        let mut w = Self { start: Vec::with_capacity(out_len), offsets: vec![0], weights: Vec::new() };
        for i in 0..out_len {
            let center = (i as f64 + 0.5) * scale;
            if filter == ResizeFilter::Nearest {
                w.start.push((center as usize).min(in_len - 1));
                w.weights.push(1.0);
                w.offsets.push(w.weights.len());
                continue;
            }
            let reach = support * stretch;
            let lo = ((center - reach).floor().max(0.0)) as usize;
            let hi = ((center + reach).ceil() as usize).min(in_len).max(lo + 1);
            let ks: Vec<f64> = (lo..hi).map(|j| kernel((j as f64 + 0.5 - center) / stretch)).collect();
            let total: f64 = ks.iter().sum();
            w.start.push(lo);
            if total.abs() < 1e-12 {
                w.weights.extend(std::iter::repeat_n(1.0 / ks.len() as f32, ks.len()));
            } else {
                w.weights.extend(ks.iter().map(|k| (k / total) as f32));
            }
            w.offsets.push(w.weights.len());
        }
        w
    }

    fn at(&self, i: usize) -> (usize, &[f32]) {
        (self.start[i], &self.weights[self.offsets[i]..self.offsets[i + 1]])
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use sha2::{Digest, Sha256};

    use super::*;

    fn ramp(h: usize, w: usize, scale: f32) -> Image {
        Image::gray(Array2::from_shape_fn((h, w), |(y, x)| (x + y * w) as f32 * scale), 8)
    }

    fn digest(a: &Array3<f32>) -> String {
        let bytes: Vec<u8> = a.iter().flat_map(|v| v.to_le_bytes()).collect();
        hex::encode(Sha256::digest(&bytes))
    }

    #[test]
    fn deterministic_shape_and_range() {
        let spec = PreprocessSpec::xray(224);
        let img = ramp(28, 28, 0.3);
        let a = spec.apply(&img).unwrap();
        assert_eq!(a.shape(), &[1, 224, 224]);
        assert_eq!(digest(&a), digest(&spec.apply(&img).unwrap()), "same input, same tensor");
        let (lo, hi) = a.iter().fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
        assert!(lo >= (0.0 - 0.5) / 0.25 - 1e-4 && hi <= (1.0 - 0.5) / 0.25 + 1e-4, "{lo} {hi}");
        let three = PreprocessSpec { channels: 3, ..spec.clone() }.apply(&img).unwrap();
        assert_eq!(three.shape(), &[3, 224, 224]);
        assert_eq!(three.index_axis(ndarray::Axis(0), 2), a.index_axis(ndarray::Axis(0), 0));
    }

    #[test]
    fn ct_windows_map_hounsfield_units() {
        // Air −1000, water 0, bone +1000 HU under the lung window (−1350..150).
        let img = Image::gray(Array2::from_shape_vec((1, 3), vec![-1000.0, 0.0, 1000.0]).unwrap(), 16);
        let spec = PreprocessSpec {
            intensity: Intensity::LUNG,
            mean: 0.0,
            std: 1.0,
            height: 1,
            width: 3,
            ..PreprocessSpec::xray(1)
        };
        let a = spec.apply(&img).unwrap();
        let v: Vec<f32> = a.iter().copied().collect();
        // (HU + 1350) / 1500, clipped: air 0.233, water 0.9, bone above the window → 1.
        assert!((v[0] - 350.0 / 1500.0).abs() < 1e-6 && (v[1] - 0.9).abs() < 1e-6 && v[2] == 1.0, "{v:?}");
        let mono1 = Image { photometric: Photometric::Monochrome1, ..img };
        let inv = spec.apply(&mono1).unwrap();
        assert!((inv[[0, 0, 0]] - (1.0 - 350.0 / 1500.0)).abs() < 1e-6);
    }

    #[test]
    fn dicom_intensity_uses_the_files_window_or_lut() {
        let spec = PreprocessSpec { intensity: Intensity::Dicom, mean: 0.0, std: 1.0, ..PreprocessSpec::xray(1) };
        let spec = PreprocessSpec { height: 1, width: 3, ..spec };
        let px = Array2::from_shape_vec((1, 3), vec![0.0, 100.0, 200.0]).unwrap();
        let mut img = Image::gray(px, 16);
        // No VOI: min–max.
        assert_eq!(spec.apply(&img).unwrap().iter().copied().collect::<Vec<_>>(), vec![0.0, 0.5, 1.0]);
        img.voi = Some(Voi::Window { center: 100.0, width: 100.0 });
        assert_eq!(spec.apply(&img).unwrap().iter().copied().collect::<Vec<_>>(), vec![0.0, 0.5, 1.0]);
        img.voi = Some(Voi::Window { center: 150.0, width: 100.0 });
        assert_eq!(spec.apply(&img).unwrap().iter().copied().collect::<Vec<_>>(), vec![0.0, 0.0, 1.0]);
        // A LUT starting at 100: below clamps to the first entry, above to the last.
        img.voi = Some(Voi::Lut { first: 100.0, table: vec![0.25, 0.75] });
        assert_eq!(spec.apply(&img).unwrap().iter().copied().collect::<Vec<_>>(), vec![0.25, 0.25, 0.75]);
    }

    #[test]
    fn antialiasing_averages_instead_of_aliasing() {
        // A 1-pixel checkerboard shrunk 8x must become flat grey, not black or white.
        let board =
            Image::gray(Array2::from_shape_fn((64, 64), |(y, x)| if (x + y) % 2 == 0 { 255.0 } else { 0.0 }), 8);
        let spec = PreprocessSpec { mean: 0.0, std: 1.0, ..PreprocessSpec::xray(8) };
        let a = spec.apply(&board).unwrap();
        assert!(a.iter().all(|&v| (v - 0.5).abs() < 0.1), "{:?}", a.iter().take(8).collect::<Vec<_>>());
    }

    #[test]
    fn specs_round_trip_and_bad_specs_are_refused() {
        let spec =
            PreprocessSpec { intensity: Intensity::Percentile { low: 1.0, high: 99.0 }, ..PreprocessSpec::xray(224) };
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<PreprocessSpec>(&json).unwrap(), spec);
        for (bad, msg) in [
            (PreprocessSpec { channels: 2, ..spec.clone() }, "channels"),
            (PreprocessSpec { std: 0.0, ..spec.clone() }, "std"),
            (PreprocessSpec { version: 99, ..spec.clone() }, "version 99"),
            (
                PreprocessSpec { intensity: Intensity::Window { center: 0.0, width: 0.0 }, ..spec.clone() },
                "window width",
            ),
            (PreprocessSpec { height: 0, ..spec.clone() }, "height"),
            (
                PreprocessSpec { intensity: Intensity::Range { low: 0.0, high: f32::NAN }, ..spec.clone() },
                "high must exceed low",
            ),
        ] {
            let err = bad.apply(&ramp(4, 4, 1.0)).unwrap_err().to_string();
            assert!(err.contains(msg), "{err}");
        }
    }
}
