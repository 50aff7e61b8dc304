//! Occlusion sensitivity: which part of an image a label's prediction rests on.
//!
//! A square patch of the image is replaced by the training mean (zero after standardisation),
//! the network runs again, and the drop in the label's logit is recorded; sliding the patch
//! over the image gives a map. Each pixel's score is the mean drop over the patches covering
//! it. Chosen over Grad-CAM because it needs nothing but forward passes (no backend-specific
//! hooks into burn's autodiff graph), works at input resolution, and is faithful by
//! construction: a high score means hiding that region really lowered the prediction.

use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use super::{ImageNet, ImageSet};
use crate::MlError;

/// A per-pixel map (row-major `height × width`) of logit drops.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Saliency {
    pub height: usize,
    pub width: usize,
    /// Mean logit drop when a patch covering the pixel is hidden (positive: supports the label).
    pub map: Vec<f32>,
    /// The unoccluded logit.
    pub logit: f64,
    pub patch: usize,
    pub stride: usize,
}

impl Saliency {
    /// Top-left corner of the `size × size` window with the highest total score.
    pub fn peak(&self, size: usize) -> (usize, usize) {
        let size = size.clamp(1, self.height.min(self.width));
        let mut best = (f32::NEG_INFINITY, (0, 0));
        for y in 0..=self.height - size {
            for x in 0..=self.width - size {
                let s: f32 = (y..y + size)
                    .flat_map(|yy| (x..x + size).map(move |xx| (yy, xx)))
                    .map(|(yy, xx)| self.map[yy * self.width + xx])
                    .sum();
                if s > best.0 {
                    best = (s, (y, x));
                }
            }
        }
        best.1
    }
}

/// Patch positions along one axis: every `stride`, plus the last position flush with the edge.
fn positions(len: usize, patch: usize, stride: usize) -> Vec<usize> {
    let last = len - patch;
    let mut p: Vec<usize> = (0..=last).step_by(stride.max(1)).collect();
    if p.last() != Some(&last) {
        p.push(last);
    }
    p
}

/// Occlusion map of `label` for one image (`channels × height × width`, before
/// standardisation, as in an [`ImageSet`]).
pub fn occlusion<B: Backend>(
    net: &ImageNet<B>,
    image: &[f32],
    labels: &[String],
    label: usize,
    patch: usize,
    stride: usize,
    device: &B::Device,
) -> Result<Saliency, MlError> {
    let spec = &net.spec;
    let (c, h, w) = (spec.channels, spec.height, spec.width);
    if image.len() != c * h * w || label >= labels.len() || patch == 0 || patch > h.min(w) {
        return Err(MlError::Input(format!(
            "occlusion: image of {} values for a {c}×{h}×{w} model, label {label} of {}, patch {patch}",
            image.len(),
            labels.len()
        )));
    }
    let (ys, xs) = (positions(h, patch, stride), positions(w, patch, stride));
    let mut pixels = image.to_vec();
    for &y in &ys {
        for &x in &xs {
            let mut v = image.to_vec();
            for ch in 0..c {
                for yy in y..y + patch {
                    for xx in x..x + patch {
                        v[ch * h * w + yy * w + xx] = net.normalise.mean;
                    }
                }
            }
            pixels.extend(v);
        }
    }
    let n = 1 + ys.len() * xs.len();
    let set = ImageSet::new(c, h, w, pixels, labels.to_vec(), vec![false; n * labels.len()])?;
    let z = net.logits(&set, labels, device)?;
    let l = labels.len();
    let base = z[label];
    let (mut sum, mut count) = (vec![0f32; h * w], vec![0u32; h * w]);
    let mut k = 1;
    for &y in &ys {
        for &x in &xs {
            let drop = (base - z[k * l + label]) as f32;
            for yy in y..y + patch {
                for xx in x..x + patch {
                    sum[yy * w + xx] += drop;
                    count[yy * w + xx] += 1;
                }
            }
            k += 1;
        }
    }
    let map = sum.iter().zip(&count).map(|(s, &n)| if n > 0 { s / n as f32 } else { 0.0 }).collect();
    Ok(Saliency { height: h, width: w, map, logit: base, patch, stride })
}
