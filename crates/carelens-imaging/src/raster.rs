//! PNG and JPEG (exports, screenshots of films) decoded with `image`, with size limits.

use std::io::Cursor;
use std::path::Path;

use ndarray::Array3;

use crate::{ImagingError, Limits, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Photometric {
    /// Higher values are brighter.
    Monochrome2,
    /// Higher values are darker (DICOM MONOCHROME1); preprocessing inverts it.
    Monochrome1,
    Rgb,
}

/// The file's own value-of-interest transform (DICOM window or VOI LUT), in the units of
/// `pixels` (i.e. after the modality LUT).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Voi {
    Window {
        center: f32,
        width: f32,
    },
    /// `table[v - first]`, clamped at both ends, already scaled to 0–1.
    Lut {
        first: f32,
        table: Vec<f32>,
    },
}

/// A decoded image: `pixels` is channels × height × width in the source's value range
/// (0–255 for 8-bit, 0–65535 for 16-bit, Hounsfield units for CT once rescaled).
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub pixels: Array3<f32>,
    pub photometric: Photometric,
    pub bits_stored: u8,
    /// The source's VOI, when it carries one (DICOM).
    pub voi: Option<Voi>,
}

impl Image {
    pub fn height(&self) -> usize {
        self.pixels.shape()[1]
    }

    pub fn width(&self) -> usize {
        self.pixels.shape()[2]
    }

    /// A grayscale image from rows of values.
    pub fn gray(pixels: ndarray::Array2<f32>, bits_stored: u8) -> Self {
        let (h, w) = pixels.dim();
        let pixels = pixels.into_shape_with_order((1, h, w)).unwrap_or_else(|_| Array3::zeros((1, h, w)));
        Self { pixels, photometric: Photometric::Monochrome2, bits_stored, voi: None }
    }
}

/// Decodes PNG (8/16-bit gray, gray+alpha, RGB, RGBA) or JPEG bytes; `path` names the source
/// in errors. Declared dimensions are checked against `limits` before pixels are allocated.
pub fn decode_raster(path: &Path, bytes: &[u8], limits: &Limits) -> Result<Image> {
    let format = image::guess_format(bytes).map_err(|_| ImagingError::Unsupported {
        path: path.to_path_buf(),
        what: "file format: not DICOM Part 10, PNG or JPEG".into(),
    })?;
    let name = match format {
        image::ImageFormat::Png => "PNG",
        image::ImageFormat::Jpeg => "JPEG",
        other => {
            return Err(ImagingError::Unsupported {
                path: path.to_path_buf(),
                what: format!("image format {other:?}"),
            });
        }
    };
    let decode_err = |e: image::ImageError| match e {
        image::ImageError::Limits(l) => ImagingError::TooLarge {
            path: path.to_path_buf(),
            what: "image dimensions or decoded size",
            value: 0,
            limit: limits.max_decoded_bytes,
        }
        .with_detail(&l.to_string()),
        other => ImagingError::Decode { path: path.to_path_buf(), format: name, detail: other.to_string() },
    };
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    let mut image_limits = image::Limits::default();
    image_limits.max_image_width = Some(limits.max_dimension);
    image_limits.max_image_height = Some(limits.max_dimension);
    image_limits.max_alloc = Some(limits.max_decoded_bytes);
    reader.limits(image_limits);
    let decoded = reader.decode().map_err(decode_err)?;
    let (w, h) = (decoded.width() as usize, decoded.height() as usize);
    let (pixels, photometric, bits) = match decoded {
        image::DynamicImage::ImageLuma8(b) => {
            (gray(b.into_raw().into_iter().map(f32::from), h, w), Photometric::Monochrome2, 8)
        }
        image::DynamicImage::ImageLumaA8(b) => {
            (gray(b.pixels().map(|p| f32::from(p.0[0])), h, w), Photometric::Monochrome2, 8)
        }
        image::DynamicImage::ImageLuma16(b) => {
            (gray(b.into_raw().into_iter().map(f32::from), h, w), Photometric::Monochrome2, 16)
        }
        image::DynamicImage::ImageLumaA16(b) => {
            (gray(b.pixels().map(|p| f32::from(p.0[0])), h, w), Photometric::Monochrome2, 16)
        }
        other => {
            let rgb = other.to_rgb8();
            let mut a = Array3::zeros((3, h, w));
            for (x, y, p) in rgb.enumerate_pixels() {
                for c in 0..3 {
                    a[[c, y as usize, x as usize]] = f32::from(p.0[c]);
                }
            }
            (a, Photometric::Rgb, 8)
        }
    };
    Ok(Image { pixels, photometric, bits_stored: bits, voi: None })
}

fn gray(values: impl Iterator<Item = f32>, h: usize, w: usize) -> Array3<f32> {
    let v: Vec<f32> = values.collect();
    Array3::from_shape_vec((1, h, w), v).unwrap_or_else(|_| Array3::zeros((1, h, w)))
}

impl ImagingError {
    fn with_detail(self, detail: &str) -> Self {
        match self {
            ImagingError::TooLarge { path, .. } => {
                ImagingError::Decode { path, format: "image", detail: format!("exceeds carelens limits: {detail}") }
            }
            other => other,
        }
    }
}

/// Encodes an image as PNG (8-bit, or 16-bit when more bits are stored), carrying no
/// metadata: used to strip exports of whatever the original file held besides pixels.
pub fn encode_png(image: &Image) -> Result<Vec<u8>> {
    let (c, h, w) = image.pixels.dim();
    let wide = image.bits_stored > 8;
    let max = if wide { 65_535.0 } else { 255.0 };
    let mut out = Vec::new();
    let enc_err = |e: image::ImageError| ImagingError::Decode {
        path: std::path::PathBuf::from("png"),
        format: "PNG",
        detail: e.to_string(),
    };
    let rgb = c >= 3;
    let px = |y: usize, x: usize, ch: usize| image.pixels[[ch.min(c - 1), y, x]].round().clamp(0.0, max);
    let channels = if rgb { 3 } else { 1 };
    let encoder = image::codecs::png::PngEncoder::new(&mut out);
    use image::ImageEncoder;
    let color = match (rgb, wide) {
        (false, false) => image::ExtendedColorType::L8,
        (false, true) => image::ExtendedColorType::L16,
        (true, false) => image::ExtendedColorType::Rgb8,
        (true, true) => image::ExtendedColorType::Rgb16,
    };
    let mut buf = Vec::with_capacity(h * w * channels * if wide { 2 } else { 1 });
    for y in 0..h {
        for x in 0..w {
            for ch in 0..channels {
                let v = px(y, x, ch);
                if wide {
                    buf.extend_from_slice(&(v as u16).to_ne_bytes()); // the encoder takes native order
                } else {
                    buf.push(v as u8);
                }
            }
        }
    }
    encoder.write_image(&buf, w as u32, h as u32, color).map_err(enc_err)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn png_gray16(w: u32, h: u32, f: impl Fn(u32, u32) -> u16) -> Vec<u8> {
        let img = image::ImageBuffer::from_fn(w, h, |x, y| image::Luma([f(x, y)]));
        let mut out = Vec::new();
        image::DynamicImage::ImageLuma16(img).write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
        out
    }

    #[test]
    fn png_8_and_16_bit_and_jpeg() {
        let p = Path::new("x.png");
        let img = decode_raster(p, &png_gray16(5, 3, |x, y| (x * 1000 + y) as u16), &Limits::DEFAULT).unwrap();
        assert_eq!((img.pixels.shape(), img.bits_stored), (&[1, 3, 5][..], 16));
        assert_eq!(img.pixels[[0, 2, 4]], 4002.0);

        let img8 = image::GrayImage::from_fn(4, 2, |x, _| image::Luma([x as u8 * 60]));
        let mut png8 = Vec::new();
        image::DynamicImage::ImageLuma8(img8.clone())
            .write_to(&mut Cursor::new(&mut png8), image::ImageFormat::Png)
            .unwrap();
        let d = decode_raster(p, &png8, &Limits::DEFAULT).unwrap();
        assert_eq!((d.bits_stored, d.pixels[[0, 1, 3]]), (8, 180.0));

        let mut jpg = Vec::new();
        image::DynamicImage::ImageLuma8(img8).write_to(&mut Cursor::new(&mut jpg), image::ImageFormat::Jpeg).unwrap();
        let j = decode_raster(Path::new("x.jpg"), &jpg, &Limits::DEFAULT).unwrap();
        assert_eq!(j.pixels.shape(), &[1, 2, 4]);
    }

    #[test]
    fn bad_files_get_typed_errors() {
        let p = Path::new("scan.png");
        let good = png_gray16(8, 8, |x, y| (x + y) as u16);
        let err = decode_raster(p, &good[..good.len() / 2], &Limits::DEFAULT).unwrap_err().to_string();
        assert!(err.contains("scan.png: cannot decode PNG"), "{err}");
        let err = decode_raster(p, b"GIF89a....", &Limits::DEFAULT).unwrap_err().to_string();
        assert!(err.contains("scan.png: unsupported"), "{err}");
        let err = decode_raster(p, b"", &Limits::DEFAULT).unwrap_err().to_string();
        assert!(err.contains("scan.png: unsupported"), "{err}");
        // A 64x64 image against a 32-pixel limit is refused before decoding its pixels.
        let small = Limits { max_dimension: 32, ..Limits::DEFAULT };
        let big = png_gray16(64, 64, |_, _| 1);
        let err = decode_raster(p, &big, &small).unwrap_err().to_string();
        assert!(err.contains("exceeds carelens limits"), "{err}");
    }

    #[test]
    fn png_export_round_trips_8_and_16_bit() {
        let gray = Image::gray(ndarray::Array2::from_shape_fn((5, 7), |(y, x)| (y * 7 + x) as f32 * 1000.0), 16);
        let mut rgb = Image::gray(ndarray::Array2::zeros((3, 4)), 8);
        rgb.pixels = ndarray::Array3::from_shape_fn((3, 3, 4), |(c, y, x)| (c * 50 + y * 10 + x) as f32);
        rgb.photometric = Photometric::Rgb;
        for img in [gray, rgb] {
            let png = encode_png(&img).unwrap();
            let back = decode_raster(Path::new("x.png"), &png, &Limits::DEFAULT).unwrap();
            assert_eq!(back.pixels, img.pixels);
        }
    }
}
