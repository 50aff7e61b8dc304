//! A compact residual CNN for multi-label image classification, sized for CPU training:
//! a 3×3 stem, one basic residual block per stage (the first keeps the resolution, each later
//! one halves it and widens), global average pooling and one linear layer giving one logit
//! per label.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

/// The architecture; saved with the weights so a model is rebuilt exactly as trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetSpec {
    /// Input channels, height and width the network was trained on.
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// Channels per stage; stage `k > 0` halves the resolution.
    pub widths: Vec<usize>,
    pub labels: usize,
}

impl NetSpec {
    pub fn new(channels: usize, height: usize, width: usize, labels: usize) -> Self {
        Self { channels, height, width, widths: vec![16, 32, 64], labels }
    }

    pub fn init<B: Backend>(&self, device: &B::Device) -> Net<B> {
        let first = self.widths.first().copied().unwrap_or(16);
        let mut blocks = Vec::with_capacity(self.widths.len());
        let mut from = first;
        for (k, &to) in self.widths.iter().enumerate() {
            blocks.push(Block::new(from, to, if k == 0 { 1 } else { 2 }, device));
            from = to;
        }
        Net {
            stem: conv3(self.channels, first, 1, device),
            stem_norm: BatchNormConfig::new(first).init(device),
            blocks,
            head: LinearConfig::new(from, self.labels).init(device),
        }
    }
}

fn conv3<B: Backend>(from: usize, to: usize, stride: usize, device: &B::Device) -> Conv2d<B> {
    Conv2dConfig::new([from, to], [3, 3])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_bias(false)
        .init(device)
}

#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    conv1: Conv2d<B>,
    norm1: BatchNorm<B>,
    conv2: Conv2d<B>,
    norm2: BatchNorm<B>,
    /// 1×1 projection when the shape changes.
    shortcut: Option<Conv2d<B>>,
    shortcut_norm: Option<BatchNorm<B>>,
}

impl<B: Backend> Block<B> {
    fn new(from: usize, to: usize, stride: usize, device: &B::Device) -> Self {
        let project = from != to || stride != 1;
        Self {
            conv1: conv3(from, to, stride, device),
            norm1: BatchNormConfig::new(to).init(device),
            conv2: conv3(to, to, 1, device),
            norm2: BatchNormConfig::new(to).init(device),
            shortcut: project.then(|| {
                Conv2dConfig::new([from, to], [1, 1]).with_stride([stride, stride]).with_bias(false).init(device)
            }),
            shortcut_norm: project.then(|| BatchNormConfig::new(to).init(device)),
        }
    }

    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let y = relu(self.norm1.forward(self.conv1.forward(x.clone())));
        let y = self.norm2.forward(self.conv2.forward(y));
        let skip = match (&self.shortcut, &self.shortcut_norm) {
            (Some(c), Some(n)) => n.forward(c.forward(x)),
            _ => x,
        };
        relu(y + skip)
    }
}

#[derive(Module, Debug)]
pub struct Net<B: Backend> {
    stem: Conv2d<B>,
    stem_norm: BatchNorm<B>,
    blocks: Vec<Block<B>>,
    head: Linear<B>,
}

impl<B: Backend> Net<B> {
    /// `[batch, channels, height, width]` → logits `[batch, labels]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let mut x = relu(self.stem_norm.forward(self.stem.forward(x)));
        for b in &self.blocks {
            x = b.forward(x);
        }
        let [n, c, _, _] = x.dims();
        let pooled = x.mean_dim(3).mean_dim(2).reshape([n, c]);
        self.head.forward(pooled)
    }
}
