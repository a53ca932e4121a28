//! Byte windows of a text, as a Burn [`DataLoader`] whose epochs are
//! reproducible: epoch `e` draws its windows from an RNG seeded by
//! `(seed, e)`, so a run resumed at epoch `e` sees exactly the batches an
//! uninterrupted run would have seen.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

use burn::{
    data::dataloader::{DataLoader, DataLoaderIterator, Progress},
    tensor::{backend::Backend, Int, Tensor, TensorData},
};
use rand::{rngs::SmallRng, Rng, SeedableRng};

/// A batch of contexts `[batch, context]` and next bytes `[batch]`.
#[derive(Clone, Debug)]
pub struct ByteBatch<B: Backend> {
    /// Byte ids of the contexts.
    pub contexts: Tensor<B, 2, Int>,
    /// Byte ids to predict.
    pub targets: Tensor<B, 1, Int>,
}

/// What a [`ByteWindowLoader`] draws: `batches` batches of `batch` windows of
/// `context` bytes (plus the next byte), from the RNG stream `seed`.
#[derive(Clone, Copy, Debug)]
pub struct WindowSpec {
    /// Bytes of context per example.
    pub context: usize,
    /// Examples per batch.
    pub batch: usize,
    /// Batches per epoch.
    pub batches: usize,
    /// Seed of the sampling stream.
    pub seed: u64,
}

/// Loader of random byte windows.
pub struct ByteWindowLoader<B: Backend> {
    text: Arc<Vec<u8>>,
    context: usize,
    batch: usize,
    batches: usize,
    seed: u64,
    /// Next epoch to draw; `fixed` loaders (validation) always draw epoch 0.
    epoch: Arc<AtomicUsize>,
    fixed: bool,
    device: B::Device,
}

impl<B: Backend> ByteWindowLoader<B> {
    /// A loader of `spec.batches` batches per epoch, starting at `first_epoch`.
    /// A `fixed` loader draws the same batches every epoch (for validation).
    pub fn new(
        text: Arc<Vec<u8>>,
        spec: WindowSpec,
        first_epoch: usize,
        fixed: bool,
        device: B::Device,
    ) -> Self {
        assert!(
            text.len() > spec.context,
            "the text must be longer than the context"
        );
        Self {
            text,
            context: spec.context,
            batch: spec.batch,
            batches: spec.batches,
            seed: spec.seed,
            epoch: Arc::new(AtomicUsize::new(first_epoch)),
            fixed,
            device,
        }
    }
}

struct WindowIter<'a, B: Backend> {
    loader: &'a ByteWindowLoader<B>,
    rng: SmallRng,
    done: usize,
}

impl<B: Backend> Iterator for WindowIter<'_, B> {
    type Item = ByteBatch<B>;

    fn next(&mut self) -> Option<ByteBatch<B>> {
        let l = self.loader;
        if self.done == l.batches {
            return None;
        }
        self.done += 1;
        let mut contexts = Vec::with_capacity(l.batch * l.context);
        let mut targets = Vec::with_capacity(l.batch);
        for _ in 0..l.batch {
            let start = self.rng.random_range(0..l.text.len() - l.context);
            contexts.extend(l.text[start..start + l.context].iter().map(|b| *b as i64));
            targets.push(l.text[start + l.context] as i64);
        }
        Some(ByteBatch {
            contexts: Tensor::from_data(TensorData::new(contexts, [l.batch, l.context]), &l.device),
            targets: Tensor::from_data(TensorData::new(targets, [l.batch]), &l.device),
        })
    }
}

impl<B: Backend> DataLoaderIterator<ByteBatch<B>> for WindowIter<'_, B> {
    fn progress(&self) -> Progress {
        Progress {
            items_processed: self.done * self.loader.batch,
            items_total: self.loader.batches * self.loader.batch,
        }
    }
}

impl<B: Backend> DataLoader<B, ByteBatch<B>> for ByteWindowLoader<B> {
    fn iter<'a>(&'a self) -> Box<dyn DataLoaderIterator<ByteBatch<B>> + 'a> {
        let epoch = if self.fixed {
            0
        } else {
            self.epoch.fetch_add(1, Ordering::SeqCst)
        };
        let stream = self.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Box::new(WindowIter {
            loader: self,
            rng: SmallRng::seed_from_u64(stream),
            done: 0,
        })
    }

    fn num_items(&self) -> usize {
        self.batches * self.batch
    }

    fn to_device(&self, device: &B::Device) -> Arc<dyn DataLoader<B, ByteBatch<B>>> {
        Arc::new(Self {
            text: self.text.clone(),
            context: self.context,
            batch: self.batch,
            batches: self.batches,
            seed: self.seed,
            epoch: self.epoch.clone(),
            fixed: self.fixed,
            device: device.clone(),
        })
    }

    /// Items `start..end` (Burn's multi-device split counts items, not
    /// batches), rounded to whole batches.
    fn slice(&self, start: usize, end: usize) -> Arc<dyn DataLoader<B, ByteBatch<B>>> {
        let batch = self.batch.max(1);
        let first = start / batch;
        let batches = (end.min(self.num_items()) / batch).saturating_sub(first);
        Arc::new(Self {
            text: self.text.clone(),
            context: self.context,
            batch: self.batch,
            batches,
            seed: self.seed ^ first as u64,
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

    #[test]
    fn slices_split_the_items_by_whole_batches() {
        let spec = WindowSpec {
            context: 4,
            batch: 8,
            batches: 10,
            seed: 1,
        };
        let text = Arc::new(b"to be or not to be, that is the question".to_vec());
        let loader = ByteWindowLoader::<Flex>::new(text, spec, 0, false, Default::default());
        assert_eq!(loader.num_items(), 80);
        // Burn's two-device split: items 0..40 and 40..80, five batches each.
        assert_eq!(loader.slice(0, 40).num_items(), 40);
        assert_eq!(loader.slice(40, 80).num_items(), 40);
        assert_eq!(loader.slice(40, 80).iter().count(), 5);
    }
}
