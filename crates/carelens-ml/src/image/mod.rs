//! Image models with burn, generic over the backend: a compact residual CNN
//! ([`NetSpec`]/[`Net`]), in-memory image sets with augmentation, and the training loop.

mod data;
mod model;
mod saliency;
mod train;

pub use data::{Augment, ImageSet};
pub use model::{Block, Net, NetSpec};
pub use saliency::{Saliency, occlusion};
pub use train::{
    EpochLog, ImageNet, ImageTrainConfig, Normalise, Quiet, TrainHistory, TrainObserver, default_checkpoint_dir,
    net_from_bytes, net_to_bytes, train_net,
};
