//! The run's metric logger: Burn's [`FileMetricLogger`] with the epochs of a
//! resumed run filed under their real numbers.
//!
//! Burn 0.21's event store numbers the first epoch it sees `1`, also when the
//! `Learner` resumes from a checkpoint (it only learns the real number at the
//! end of that epoch), so the first epoch after a resume from epoch `c` would
//! overwrite the logs of epoch 1 and epoch `c + 1` would have none. This
//! logger moves epoch numbers `1..=c` to `c + 1..=2c`; from the second
//! resumed epoch on the store's numbers are real and pass through.

use std::path::Path;

use burn::train::{
    logger::{FileMetricLogger, MetricLogger},
    metric::{
        store::{EpochSummary, MetricsUpdate, Split},
        MetricDefinition, NumericEntry,
    },
};

/// A [`FileMetricLogger`] for a run resumed after epoch `resumed_after` (0: a new run).
pub struct EpochFileLogger {
    inner: FileMetricLogger,
    resumed_after: usize,
}

impl EpochFileLogger {
    /// Logs into `dir/{train,valid}/epoch-N/` for a run resumed after epoch
    /// `resumed_after` (0 for a new run).
    pub fn new(dir: &Path, resumed_after: usize) -> Self {
        Self {
            inner: FileMetricLogger::new(dir),
            resumed_after,
        }
    }

    /// The real epoch of the event store's epoch number.
    pub fn real_epoch(&self, epoch: usize) -> usize {
        if epoch <= self.resumed_after {
            epoch + self.resumed_after
        } else {
            epoch
        }
    }
}

impl MetricLogger for EpochFileLogger {
    fn log(&mut self, update: MetricsUpdate, epoch: usize, split: &Split) {
        let epoch = self.real_epoch(epoch);
        self.inner.log(update, epoch, split)
    }

    /// Reads by real epoch (what Burn's checkpointing strategies ask for).
    fn read_numeric(
        &mut self,
        name: &str,
        epoch: usize,
        split: &Split,
    ) -> Result<Vec<NumericEntry>, String> {
        self.inner.read_numeric(name, epoch, split)
    }

    fn log_metric_definition(&mut self, definition: MetricDefinition) {
        self.inner.log_metric_definition(definition)
    }

    fn log_epoch_summary(&mut self, summary: EpochSummary) {
        self.inner.log_epoch_summary(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_resumed_epoch_gets_its_real_number() {
        let dir = std::env::temp_dir();
        let fresh = EpochFileLogger::new(&dir, 0);
        assert_eq!((fresh.real_epoch(1), fresh.real_epoch(2)), (1, 2));
        let resumed = EpochFileLogger::new(&dir, 3);
        // The store says 1 for epoch 4, then the real 5, 6.
        assert_eq!(
            (
                resumed.real_epoch(1),
                resumed.real_epoch(5),
                resumed.real_epoch(6)
            ),
            (4, 5, 6)
        );
    }
}
