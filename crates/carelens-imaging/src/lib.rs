//! carelens imaging: decode images into `f32` pixel arrays and turn them into model-ready
//! tensors the same way at training and at inference.
//!
//! No network or database code lives here. Every decoder checks declared sizes against
//! [`Limits`] *before* allocating, so a small hostile file cannot make carelens allocate
//! gigabytes.

mod deid;
mod dicom;
mod dicom_guard;
mod error;
mod jpegls;
mod npz;
mod preprocess;
mod raster;
mod series;

pub use deid::{DeidConfig, Deidentified, pseudonym, remap_uid};
pub use dicom::{DicomFile, DicomInfo, is_dicom};
pub use dicom_guard::{DicomScan, scan_dicom};
pub use error::{ImagingError, Result};
pub use npz::{MedMnist, NpyArray, NpyDtype, read_npz};
pub use preprocess::{Intensity, PreprocessSpec, ResizeFilter};
pub use raster::{Image, Photometric, Voi, decode_raster, encode_png};
pub use series::{SliceKey, neighbours_25d, representative_slices, slice_order};

/// Hard caps applied before allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest width or height accepted.
    pub max_dimension: u32,
    /// Largest number of frames accepted.
    pub max_frames: u32,
    /// Largest decoded size in bytes.
    pub max_decoded_bytes: u64,
}

impl Limits {
    pub const DEFAULT: Limits = Limits { max_dimension: 16_384, max_frames: 4_096, max_decoded_bytes: 1 << 30 };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}
