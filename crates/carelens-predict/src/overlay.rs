//! Heatmap overlays: the image in grey, the occlusion map on top in a warm colour scale.

use std::io::Cursor;

use carelens_ml::image::Saliency;
use image::{ImageFormat, Rgb, RgbImage};
use ndarray::Array3;

use crate::{PredictError, Result};

/// Bilinear sample of the map at a fractional position (pixel centres at integer + 0.5).
fn sample(s: &Saliency, y: f32, x: f32) -> f32 {
    let fy = (y - 0.5).clamp(0.0, (s.height - 1) as f32);
    let fx = (x - 0.5).clamp(0.0, (s.width - 1) as f32);
    let (y0, x0) = (fy.floor() as usize, fx.floor() as usize);
    let (y1, x1) = ((y0 + 1).min(s.height - 1), (x0 + 1).min(s.width - 1));
    let (ty, tx) = (fy - y0 as f32, fx - x0 as f32);
    let at = |yy: usize, xx: usize| s.map[yy * s.width + xx];
    let top = at(y0, x0) * (1.0 - tx) + at(y0, x1) * tx;
    let bottom = at(y1, x0) * (1.0 - tx) + at(y1, x1) * tx;
    top * (1.0 - ty) + bottom * ty
}

/// Box blur of radius `r` (clamped at the edges).
fn blur(s: &Saliency, r: usize) -> Saliency {
    if r == 0 {
        return s.clone();
    }
    let (h, w) = (s.height, s.width);
    let pass = |src: &[f32], horizontal: bool| -> Vec<f32> {
        let mut out = vec![0f32; h * w];
        for y in 0..h {
            for x in 0..w {
                let (pos, len) = if horizontal { (x, w) } else { (y, h) };
                let (lo, hi) = (pos.saturating_sub(r), (pos + r).min(len - 1));
                let sum: f32 = (lo..=hi).map(|k| if horizontal { src[y * w + k] } else { src[k * w + x] }).sum();
                out[y * w + x] = sum / (hi - lo + 1) as f32;
            }
        }
        out
    };
    let map = pass(&pass(&s.map, true), false);
    Saliency { map, ..s.clone() }
}

/// "Hot" colour scale: black-red-yellow-white over 0..=1 (overlays use red to light yellow).
fn hot(t: f32) -> [f32; 3] {
    [(3.0 * t).clamp(0.0, 1.0), (3.0 * t - 1.0).clamp(0.0, 1.0), (3.0 * t - 2.0).clamp(0.0, 1.0)]
}

/// Renders `background` (1 × H × W, values in 0..=1) with the positive part of `saliency`
/// (regions whose hiding lowered the prediction) blended on top, as PNG bytes. Regions below
/// 20 % of the peak stay plain grey, so the image stays readable.
pub fn render_overlay(background: &Array3<f32>, saliency: &Saliency) -> Result<Vec<u8>> {
    let (_, h, w) = background.dim();
    if h == 0 || w == 0 || saliency.map.len() != saliency.height * saliency.width || saliency.map.is_empty() {
        return Err(PredictError::Input("overlay: empty image or map".into()));
    }
    // Patches move in steps of `stride`, which leaves plateaus; a box blur of that width
    // smooths them without moving the peak.
    let smooth = blur(saliency, saliency.stride / 2);
    let saliency = &smooth;
    let peak = saliency.map.iter().copied().fold(0f32, f32::max);
    let mut img = RgbImage::new(w as u32, h as u32);
    for y in 0..h {
        for x in 0..w {
            let g = background[[0, y, x]].clamp(0.0, 1.0);
            let mut rgb = [g, g, g];
            if peak > 0.0 {
                let t = sample(
                    saliency,
                    (y as f32 + 0.5) * saliency.height as f32 / h as f32,
                    (x as f32 + 0.5) * saliency.width as f32 / w as f32,
                ) / peak;
                if t > 0.2 {
                    let alpha = 0.65 * t.min(1.0);
                    let c = hot(0.35 + 0.45 * t.min(1.0));
                    for k in 0..3 {
                        rgb[k] = rgb[k] * (1.0 - alpha) + c[k] * alpha;
                    }
                }
            }
            img.put_pixel(x as u32, y as u32, Rgb(rgb.map(|v| (v * 255.0).round() as u8)));
        }
    }
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png).map_err(|e| PredictError::Input(format!("overlay PNG: {e}")))?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_hot_spot_is_coloured_and_the_rest_stays_grey() {
        let mut map = vec![0f32; 16 * 16];
        for y in 10..14 {
            for x in 2..6 {
                map[y * 16 + x] = 2.0;
            }
        }
        let s = Saliency { height: 16, width: 16, map, logit: 1.0, patch: 4, stride: 2 };
        let bg = Array3::from_elem((1, 64, 64), 0.5f32);
        let png = render_overlay(&bg, &s).unwrap();
        let img = image::load_from_memory(&png).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (64, 64));
        let hot = img.get_pixel(16, 48); // inside the spot (x 8..24, y 40..56)
        assert!(i32::from(hot[0]) > i32::from(hot[2]) + 60, "{hot:?}");
        let cold = img.get_pixel(48, 8);
        assert_eq!(cold[0], cold[2], "{cold:?}");
        assert_eq!(cold[0], 128);
    }
}
