//! The one data loader of every run: a Burn [`DataLoader`] over a seeded
//! [`BatchSource`] (byte windows of a text, speech crops, moving shapes,
//! multimodal examples), with reproducible epochs: epoch `e` draws its batches
//! from an RNG seeded by `(seed, e)`, so a run resumed at epoch `e` sees
//! exactly the batches an uninterrupted run would have seen.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

use burn::{
    data::dataloader::{DataLoader, DataLoaderIterator, Progress},
    tensor::backend::{AutodiffBackend, Backend},
};
use rand::{rngs::SmallRng, SeedableRng};

use crate::config::RunConfig;

/// Data that could not be read or does not fit the config.
#[derive(Debug, thiserror::Error)]
#[error("data file {path}: {reason}")]
pub struct DataError {
    /// The file (or folder).
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

/// Something that draws batches of examples from an RNG.
pub trait BatchSource<B: Backend>: Send + Sync + 'static {
    /// The batch type.
    type Batch: Send + 'static;

    /// Draws batch number `index` of an epoch (`batch` examples on
    /// `device`). Sampling sources use `rng` and ignore `index`; a source
    /// that walks a split in order (a full validation pass) uses `index`.
    fn draw(
        &self,
        rng: &mut SmallRng,
        index: usize,
        batch: usize,
        device: &B::Device,
    ) -> Self::Batch;
}

/// What a [`SeededLoader`] draws per epoch.
#[derive(Clone, Copy, Debug)]
pub struct LoaderSpec {
    /// Examples per batch.
    pub batch: usize,
    /// Batches per epoch.
    pub batches: usize,
    /// Seed of the sampling stream.
    pub seed: u64,
}

/// A loader of `spec.batches` batches per epoch from a [`BatchSource`].
pub struct SeededLoader<B: Backend, S> {
    source: Arc<S>,
    spec: LoaderSpec,
    /// Next epoch to draw; `fixed` loaders (validation) always draw epoch 0.
    epoch: Arc<AtomicUsize>,
    fixed: bool,
    device: B::Device,
}

impl<B: Backend, S: BatchSource<B>> SeededLoader<B, S> {
    /// A loader starting at `first_epoch`. A `fixed` loader draws the same
    /// batches every epoch (for validation).
    pub fn new(
        source: Arc<S>,
        spec: LoaderSpec,
        first_epoch: usize,
        fixed: bool,
        device: B::Device,
    ) -> Self {
        Self {
            source,
            spec,
            epoch: Arc::new(AtomicUsize::new(first_epoch)),
            fixed,
            device,
        }
    }

    /// The batches of one epoch, drawn without advancing the loader (for
    /// end-of-run measurements).
    pub fn epoch_batches(&self, epoch: usize) -> Vec<S::Batch> {
        let mut rng = SmallRng::seed_from_u64(stream(self.spec.seed, epoch));
        (0..self.spec.batches)
            .map(|index| {
                self.source
                    .draw(&mut rng, index, self.spec.batch, &self.device)
            })
            .collect()
    }
}

fn stream(seed: u64, epoch: usize) -> u64 {
    seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

struct SeededIter<'a, B: Backend, S> {
    loader: &'a SeededLoader<B, S>,
    rng: SmallRng,
    done: usize,
}

impl<B: Backend, S: BatchSource<B>> Iterator for SeededIter<'_, B, S> {
    type Item = S::Batch;

    fn next(&mut self) -> Option<S::Batch> {
        let l = self.loader;
        if self.done == l.spec.batches {
            return None;
        }
        self.done += 1;
        Some(
            l.source
                .draw(&mut self.rng, self.done - 1, l.spec.batch, &l.device),
        )
    }
}

impl<B: Backend, S: BatchSource<B>> DataLoaderIterator<S::Batch> for SeededIter<'_, B, S> {
    fn progress(&self) -> Progress {
        Progress {
            items_processed: self.done * self.loader.spec.batch,
            items_total: self.loader.spec.batches * self.loader.spec.batch,
        }
    }
}

/// The train loader (autodiff backend) and the validation loader (its inner
/// backend) of a run, as [`run_loaders`] builds them.
pub type RunLoaders<B, S, V> = (
    Arc<SeededLoader<B, S>>,
    Arc<SeededLoader<<B as AutodiffBackend>::InnerBackend, V>>,
);

/// The loaders of a run: `train.steps_per_epoch × train.grad_accumulation`
/// batches per epoch drawn from `train` (continuing at the resumed epoch),
/// and `train.eval_batches` fixed batches drawn from `valid` on the inner
/// backend (seed `run.seed ^ 0x5eed`, the same every epoch).
pub fn run_loaders<B: AutodiffBackend, S: BatchSource<B>, V: BatchSource<B::InnerBackend>>(
    config: &RunConfig,
    train: Arc<S>,
    valid: Arc<V>,
    valid_batches: usize,
    resume_epoch: Option<usize>,
    device: &B::Device,
) -> RunLoaders<B, S, V> {
    let t = &config.train;
    let train_loader = SeededLoader::new(
        train,
        LoaderSpec {
            batch: t.batch,
            batches: t.steps_per_epoch * t.grad_accumulation,
            seed: config.run.seed,
        },
        resume_epoch.unwrap_or(0),
        false,
        device.clone(),
    );
    let valid_loader = SeededLoader::new(
        valid,
        LoaderSpec {
            batch: t.batch,
            batches: valid_batches,
            seed: config.run.seed ^ 0x5eed,
        },
        0,
        true,
        device.clone(),
    );
    (Arc::new(train_loader), Arc::new(valid_loader))
}

impl<B: Backend, S: BatchSource<B>> DataLoader<B, S::Batch> for SeededLoader<B, S> {
    fn iter<'a>(&'a self) -> Box<dyn DataLoaderIterator<S::Batch> + 'a> {
        let epoch = if self.fixed {
            0
        } else {
            self.epoch.fetch_add(1, Ordering::SeqCst)
        };
        Box::new(SeededIter {
            loader: self,
            rng: SmallRng::seed_from_u64(stream(self.spec.seed, epoch)),
            done: 0,
        })
    }

    fn num_items(&self) -> usize {
        self.spec.batches * self.spec.batch
    }

    fn to_device(&self, device: &B::Device) -> Arc<dyn DataLoader<B, S::Batch>> {
        Arc::new(Self {
            source: self.source.clone(),
            spec: self.spec,
            epoch: self.epoch.clone(),
            fixed: self.fixed,
            device: device.clone(),
        })
    }

    /// Items `start..end` (Burn's multi-device split), rounded to whole batches.
    fn slice(&self, start: usize, end: usize) -> Arc<dyn DataLoader<B, S::Batch>> {
        let batch = self.spec.batch.max(1);
        let first = start / batch;
        let batches = (end.min(self.num_items()) / batch).saturating_sub(first);
        Arc::new(Self {
            source: self.source.clone(),
            spec: LoaderSpec {
                batch: self.spec.batch,
                batches,
                seed: self.spec.seed ^ (first as u64).wrapping_mul(0xD1B5_4A32_D192_ED03),
            },
            // Each slice (one per device) counts its own epochs from where the
            // whole loader stands, so every device's epoch e is reproducible.
            epoch: Arc::new(AtomicUsize::new(self.epoch.load(Ordering::SeqCst))),
            fixed: self.fixed,
            device: self.device.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use rand::Rng;

    struct Counter;

    impl<B: Backend> BatchSource<B> for Counter {
        type Batch = Vec<u32>;
        fn draw(&self, rng: &mut SmallRng, _: usize, batch: usize, _: &B::Device) -> Vec<u32> {
            (0..batch).map(|_| rng.random_range(0..1000)).collect()
        }
    }

    fn loader(first: usize, fixed: bool) -> SeededLoader<Flex, Counter> {
        let spec = LoaderSpec {
            batch: 4,
            batches: 3,
            seed: 9,
        };
        SeededLoader::new(Arc::new(Counter), spec, first, fixed, Default::default())
    }

    #[test]
    fn epochs_are_reproducible_and_distinct() {
        let a = loader(0, false);
        let first: Vec<_> = a.iter().collect();
        let second: Vec<_> = a.iter().collect();
        assert_eq!(first.len(), 3);
        assert_ne!(first, second);
        // A loader resumed at epoch 1 draws what the first one drew second.
        let resumed: Vec<_> = loader(1, false).iter().collect();
        assert_eq!(resumed, second);
        assert_eq!(loader(0, false).epoch_batches(1), second);
        // A fixed loader repeats epoch 0.
        let fixed = loader(5, true);
        let x: Vec<_> = fixed.iter().collect();
        assert_eq!(x, fixed.iter().collect::<Vec<_>>());
        assert_eq!(x, first);
    }

    #[test]
    fn slices_split_the_items_by_whole_batches() {
        let l = loader(0, false);
        assert_eq!(l.num_items(), 12);
        assert_eq!(l.slice(0, 6).num_items(), 4);
        assert_eq!(l.slice(6, 12).num_items(), 8);
    }
}
