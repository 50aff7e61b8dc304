//! Series handling: order a CT/MR series along the slice axis, pick representative slices,
//! or stack neighbours into a 2.5D input.

use ndarray::{Array3, Axis};

use crate::{Image, ImagingError, PreprocessSpec, Result};

/// Where a slice sits: position along the slice normal (ImagePositionPatient z or
/// SliceLocation) and InstanceNumber, either of which may be missing.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SliceKey {
    pub position: Option<f64>,
    pub instance_number: Option<i32>,
}

/// Indices of `keys` in slice order: by position when every slice has one, else by instance
/// number when every slice has one, else as given. Ties keep their input order.
pub fn slice_order(keys: &[SliceKey]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..keys.len()).collect();
    if keys.iter().all(|k| k.position.is_some_and(f64::is_finite)) {
        order.sort_by(|&a, &b| keys[a].position.unwrap_or(0.0).total_cmp(&keys[b].position.unwrap_or(0.0)));
    } else if keys.iter().all(|k| k.instance_number.is_some()) {
        order.sort_by_key(|&i| keys[i].instance_number);
    }
    order
}

/// `count` representative positions (0-based, into the ordered series of `n` slices), evenly
/// spaced over the middle 80 % where the anatomy of interest usually is; fewer when the
/// series is shorter.
pub fn representative_slices(n: usize, count: usize) -> Vec<usize> {
    if n == 0 || count == 0 {
        return Vec::new();
    }
    if count >= n {
        return (0..n).collect();
    }
    if count == 1 {
        return vec![n / 2];
    }
    let (lo, hi) = (0.1 * (n - 1) as f64, 0.9 * (n - 1) as f64);
    let mut out: Vec<usize> =
        (0..count).map(|i| (lo + (hi - lo) * i as f64 / (count - 1) as f64).round() as usize).collect();
    out.dedup();
    out
}

/// The slice at `center` and its neighbours `gap` slices away, clamped at the ends.
pub fn neighbours_25d(n: usize, center: usize, gap: usize) -> [usize; 3] {
    let last = n.saturating_sub(1);
    let c = center.min(last);
    [c.saturating_sub(gap), c, (c + gap).min(last)]
}

impl PreprocessSpec {
    /// A 2.5D input: three neighbouring slices, each preprocessed as a 1-channel image, become
    /// the three channels (below, centre, above). Requires `channels == 3`.
    pub fn apply_25d(&self, slices: [&Image; 3]) -> Result<Array3<f32>> {
        if self.channels != 3 {
            return Err(ImagingError::Spec("a 2.5D stack needs channels = 3".into()));
        }
        let one = PreprocessSpec { channels: 1, ..self.clone() };
        let mut out = Array3::zeros((3, self.height as usize, self.width as usize));
        for (c, img) in slices.iter().enumerate() {
            let t = one.apply(img)?;
            out.index_axis_mut(Axis(0), c).assign(&t.index_axis(Axis(0), 0));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use ndarray::Array2;

    use super::*;

    #[test]
    fn orders_by_position_then_instance_number() {
        let k = |p: Option<f64>, n: Option<i32>| SliceKey { position: p, instance_number: n };
        assert_eq!(slice_order(&[k(Some(5.0), Some(1)), k(Some(-2.5), Some(3)), k(Some(0.0), Some(2))]), vec![1, 2, 0]);
        // One slice without a position: fall back to instance numbers.
        assert_eq!(slice_order(&[k(Some(5.0), Some(3)), k(None, Some(1)), k(Some(0.0), Some(2))]), vec![1, 2, 0]);
        assert_eq!(slice_order(&[k(None, None), k(None, Some(1))]), vec![0, 1]);
    }

    #[test]
    fn representative_slices_cover_the_middle() {
        assert_eq!(representative_slices(100, 1), vec![50]);
        assert_eq!(representative_slices(101, 5), vec![10, 30, 50, 70, 90]);
        assert_eq!(representative_slices(3, 5), vec![0, 1, 2]);
        assert!(representative_slices(0, 3).is_empty());
        assert_eq!(neighbours_25d(10, 0, 2), [0, 0, 2]);
        assert_eq!(neighbours_25d(10, 9, 2), [7, 9, 9]);
    }

    #[test]
    fn stack_puts_slices_in_channels() {
        let img = |v: f32| Image::gray(Array2::from_elem((4, 4), v), 8);
        let (a, b, c) = (img(0.0), img(127.5), img(255.0));
        let spec = PreprocessSpec { channels: 3, mean: 0.0, std: 1.0, ..PreprocessSpec::xray(2) };
        let t = spec.apply_25d([&a, &b, &c]).unwrap();
        assert_eq!(t.shape(), &[3, 2, 2]);
        assert_eq!((t[[0, 0, 0]], t[[1, 1, 1]], t[[2, 0, 1]]), (0.0, 0.5, 1.0));
        assert!(PreprocessSpec::xray(2).apply_25d([&a, &b, &c]).is_err());
    }
}
