//! The run's metric logs: Burn's [`FileMetricLogger`] with the epochs of a
//! resumed run filed under their real numbers ([`EpochFileLogger`]), the
//! readers of those logs (per-epoch means, per-step series), and the CSV
//! files made from them (`metrics.csv`, `steps.csv`).
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

/// `(epoch, mean train value, mean validation value)` of one logged metric.
pub type Curve = Vec<(usize, f64, f64)>;

/// The values of metric `name` logged for `split` (`"train"` or `"valid"`)
/// in `epoch`, one per step (`<dir>/<split>/epoch-N/<name>.log`).
pub fn read_values(dir: &Path, split: &str, epoch: usize, name: &str) -> Option<Vec<f64>> {
    let text = std::fs::read_to_string(
        dir.join(split)
            .join(format!("epoch-{epoch}"))
            .join(format!("{name}.log")),
    )
    .ok()?;
    let values: Vec<f64> = text
        .lines()
        .filter_map(|l| l.split(',').next()?.trim().parse().ok())
        .collect();
    (!values.is_empty()).then_some(values)
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// Mean train and validation value of the metric `name` per epoch, read
/// from the Learner's logs (epochs with both logged).
pub fn read_metric_curve(dir: &Path, name: &str, epochs: usize) -> Curve {
    (1..=epochs)
        .filter_map(|e| {
            let train = read_values(dir, "train", e, name)?;
            let valid = read_values(dir, "valid", e, name)?;
            Some((e, mean(&train), mean(&valid)))
        })
        .collect()
}

/// Mean train and validation loss per epoch, read from the Learner's logs.
pub fn read_curve(dir: &Path, epochs: usize) -> Curve {
    read_metric_curve(dir, "Loss", epochs)
}

/// One metric's history: every train step's value and every epoch's
/// validation mean, placed at the run's step count.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// The metric (`Loss` or a head's name).
    pub name: String,
    /// Its unit (`nats/byte`, `MSE`, ...), empty when it has none.
    pub unit: String,
    /// `(step, epoch, value)` of every train step; steps count from 1 over the run.
    pub train: Vec<(usize, usize, f64)>,
    /// `(step at the end of the epoch, epoch, mean validation value)`.
    pub valid: Vec<(usize, usize, f64)>,
}

/// The [`Series`] of metric `name` over `epochs` epochs of the logs in `dir`.
pub fn read_series(dir: &Path, name: &str, unit: &str, epochs: usize) -> Series {
    let mut series = Series {
        name: name.to_string(),
        unit: unit.to_string(),
        train: Vec::new(),
        valid: Vec::new(),
    };
    let mut step = 0;
    for epoch in 1..=epochs {
        for value in read_values(dir, "train", epoch, name).unwrap_or_default() {
            step += 1;
            series.train.push((step, epoch, value));
        }
        if let Some(valid) = read_values(dir, "valid", epoch, name) {
            series.valid.push((step, epoch, mean(&valid)));
        }
    }
    series
}

/// Writes `metrics.csv`: per epoch the mean train and validation loss
/// (plus validation bits per byte when `bits_per_byte`), then every head's
/// train and validation means (`train_<name>`, `valid_<name>` columns).
pub fn write_metrics_csv(
    dir: &Path,
    curve: &Curve,
    heads: &[(String, Curve)],
    bits_per_byte: bool,
) -> Result<(), String> {
    let mut csv = String::from("epoch,train_loss,valid_loss");
    if bits_per_byte {
        csv += ",valid_bits_per_byte";
    }
    for (name, _) in heads {
        csv += &format!(",train_{name},valid_{name}");
    }
    csv += "\n";
    for (epoch, train, valid) in curve {
        csv += &format!("{epoch},{train:.6},{valid:.6}");
        if bits_per_byte {
            csv += &format!(",{:.6}", valid / core::f64::consts::LN_2);
        }
        for (_, head) in heads {
            match head.iter().find(|h| h.0 == *epoch) {
                Some((_, t, v)) => csv += &format!(",{t:.6},{v:.6}"),
                None => csv += ",,",
            }
        }
        csv += "\n";
    }
    std::fs::write(dir.join("metrics.csv"), csv).map_err(|e| format!("metrics.csv: {e}"))
}

/// Writes `steps.csv`: one row per train step, `step,epoch` and the value
/// of every series (all series of a run log every step).
pub fn write_steps_csv(dir: &Path, series: &[Series]) -> Result<(), String> {
    let mut csv = String::from("step,epoch");
    for s in series {
        csv += &format!(",{}", s.name);
    }
    csv += "\n";
    let rows = series.first().map(|s| s.train.len()).unwrap_or(0);
    for row in 0..rows {
        let (step, epoch, _) = series[0].train[row];
        csv += &format!("{step},{epoch}");
        for s in series {
            match s.train.get(row) {
                Some((_, _, v)) => csv += &format!(",{v:.6}"),
                None => csv += ",",
            }
        }
        csv += "\n";
    }
    std::fs::write(dir.join("steps.csv"), csv).map_err(|e| format!("steps.csv: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_number_steps_over_the_run_and_place_validation_at_epoch_ends() {
        let dir = std::env::temp_dir().join(format!("arbitor-logs-{}", std::process::id()));
        for (split, epoch, lines) in [
            ("train", 1, "3.0,8\n2.0,8\n"),
            ("train", 2, "1.5,8\n1.0,8\n"),
            ("valid", 1, "2.5,8\n2.0,8\n"),
            ("valid", 2, "1.25,8\n"),
        ] {
            let path = dir.join(split).join(format!("epoch-{epoch}"));
            std::fs::create_dir_all(&path).unwrap();
            std::fs::write(path.join("Loss.log"), lines).unwrap();
        }
        let s = read_series(&dir, "Loss", "nats/byte", 2);
        assert_eq!(
            s.train,
            vec![(1, 1, 3.0), (2, 1, 2.0), (3, 2, 1.5), (4, 2, 1.0)]
        );
        assert_eq!(s.valid, vec![(2, 1, 2.25), (4, 2, 1.25)]);
        assert_eq!(read_curve(&dir, 2), vec![(1, 2.5, 2.25), (2, 1.25, 1.25)]);
        write_steps_csv(&dir, &[s]).unwrap();
        let csv = std::fs::read_to_string(dir.join("steps.csv")).unwrap();
        assert_eq!(csv.lines().nth(3), Some("3,2,1.500000"));
        std::fs::remove_dir_all(dir).unwrap();
    }

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
