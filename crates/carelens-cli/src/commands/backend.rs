//! The burn backend this binary was built with (cargo features of carelens-cli):
//! `cuda`, else `wgpu`, else the CPU default `flex`, else `ndarray`.

#[cfg(feature = "cuda")]
mod chosen {
    pub type Inner = burn::backend::Cuda;
    pub const NAME: &str = "burn cuda (GPU)";
}

#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
mod chosen {
    pub type Inner = burn::backend::Wgpu;
    pub const NAME: &str = "burn wgpu (GPU)";
}

#[cfg(all(feature = "flex", not(any(feature = "cuda", feature = "wgpu"))))]
mod chosen {
    pub type Inner = burn::backend::Flex;
    pub const NAME: &str = "burn flex (CPU)";
}

#[cfg(all(feature = "ndarray", not(any(feature = "cuda", feature = "wgpu", feature = "flex"))))]
mod chosen {
    pub type Inner = burn::backend::NdArray;
    pub const NAME: &str = "burn ndarray (CPU)";
}

/// Inference backend.
pub type InferBackend = chosen::Inner;
/// Training backend (automatic differentiation on top).
pub type TrainBackend = burn::backend::Autodiff<chosen::Inner>;
pub const NAME: &str = chosen::NAME;

pub fn device() -> burn::tensor::Device<InferBackend> {
    Default::default()
}
