//! Image sets in memory and the training-time augmentation.

use serde::{Deserialize, Serialize};

use crate::{MlError, Rng};

/// `n` images of `channels × height × width` f32 samples (row-major, image after image) with
/// `labels.len()` binary labels each.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSet {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub pixels: Vec<f32>,
    pub label_names: Vec<String>,
    /// `n × labels`, row-major.
    pub targets: Vec<bool>,
}

impl ImageSet {
    pub fn new(
        channels: usize,
        height: usize,
        width: usize,
        pixels: Vec<f32>,
        label_names: Vec<String>,
        targets: Vec<bool>,
    ) -> Result<Self, MlError> {
        let per = channels * height * width;
        if per == 0 || label_names.is_empty() {
            return Err(MlError::Input("images need a non-zero size and at least one label".into()));
        }
        if !pixels.len().is_multiple_of(per) || targets.len() != pixels.len() / per * label_names.len() {
            return Err(MlError::Input(format!(
                "{} samples and {} targets do not make whole {channels}×{height}×{width} images with {} labels each",
                pixels.len(),
                targets.len(),
                label_names.len()
            )));
        }
        if let Some(i) = pixels.iter().position(|p| !p.is_finite()) {
            return Err(MlError::Input(format!("image {} has a non-finite sample (NaN or infinity)", i / per)));
        }
        Ok(Self { channels, height, width, pixels, label_names, targets })
    }

    pub fn len(&self) -> usize {
        self.pixels.len() / self.image_len()
    }

    pub fn is_empty(&self) -> bool {
        self.pixels.is_empty()
    }

    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    pub fn image(&self, i: usize) -> &[f32] {
        let n = self.image_len();
        &self.pixels[i * n..(i + 1) * n]
    }

    pub fn target(&self, i: usize, label: usize) -> bool {
        self.targets[i * self.label_names.len() + label]
    }

    /// One label's targets over all images.
    pub fn label_targets(&self, label: usize) -> Vec<bool> {
        (0..self.len()).map(|i| self.target(i, label)).collect()
    }

    /// The images at `rows`, in that order.
    pub fn subset(&self, rows: &[usize]) -> Self {
        let l = self.label_names.len();
        Self {
            pixels: rows.iter().flat_map(|&r| self.image(r).iter().copied()).collect(),
            targets: rows.iter().flat_map(|&r| self.targets[r * l..(r + 1) * l].iter().copied()).collect(),
            label_names: self.label_names.clone(),
            ..*self
        }
    }
}

/// Random geometric and intensity changes applied to training images only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Augment {
    /// Uniform rotation in ±degrees.
    pub rotate_degrees: f32,
    /// Uniform shift in ± this fraction of the image size.
    pub shift: f32,
    /// Intensity `x · (1 + u) + v` with `u, v` uniform in ± this (in normalised units).
    pub intensity: f32,
    /// Horizontal flips, off by default: left and right are anatomy (heart, situs), not
    /// symmetry.
    pub horizontal_flip: bool,
}

impl Default for Augment {
    fn default() -> Self {
        Self { rotate_degrees: 8.0, shift: 0.06, intensity: 0.1, horizontal_flip: false }
    }
}

impl Augment {
    pub const NONE: Self = Self { rotate_degrees: 0.0, shift: 0.0, intensity: 0.0, horizontal_flip: false };

    /// Writes an augmented copy of `src` (`channels × h × w`) into `dst`, bilinear sampling
    /// with edge clamping.
    pub fn apply(&self, src: &[f32], channels: usize, h: usize, w: usize, rng: &mut Rng, dst: &mut [f32]) {
        let mut uniform = |scale: f32| (rng.unit() as f32 * 2.0 - 1.0) * scale;
        let angle = uniform(self.rotate_degrees).to_radians();
        let (dy, dx) = (uniform(self.shift) * h as f32, uniform(self.shift) * w as f32);
        let (gain, offset) = (1.0 + uniform(self.intensity), uniform(self.intensity));
        let flip = self.horizontal_flip && uniform(1.0) > 0.0;
        let (sin, cos) = angle.sin_cos();
        let (cy, cx) = ((h as f32 - 1.0) / 2.0, (w as f32 - 1.0) / 2.0);
        let plane = h * w;
        for y in 0..h {
            for x in 0..w {
                // Inverse map: output pixel → source position.
                let xo = if flip { w - 1 - x } else { x } as f32 - cx - dx;
                let yo = y as f32 - cy - dy;
                let sx = (cos * xo + sin * yo + cx).clamp(0.0, w as f32 - 1.0);
                let sy = (-sin * xo + cos * yo + cy).clamp(0.0, h as f32 - 1.0);
                let (x0, y0) = (sx.floor() as usize, sy.floor() as usize);
                let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
                let (fx, fy) = (sx - x0 as f32, sy - y0 as f32);
                for c in 0..channels {
                    let p = &src[c * plane..(c + 1) * plane];
                    let top = p[y0 * w + x0] * (1.0 - fx) + p[y0 * w + x1] * fx;
                    let bottom = p[y1 * w + x0] * (1.0 - fx) + p[y1 * w + x1] * fx;
                    dst[c * plane + y * w + x] = (top * (1.0 - fy) + bottom * fy) * gain + offset;
                }
            }
        }
    }
}
