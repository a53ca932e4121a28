//! Training throughput as a Burn metric: tokens (predicted bytes, or samples
//! for the non-text tasks) per second within the epoch.

use std::{sync::Arc, time::Instant};

use burn::train::metric::{
    state::{FormatOptions, NumericMetricState},
    Metric, MetricAttributes, MetricMetadata, MetricName, Numeric, NumericAttributes, NumericEntry,
    SerializedEntry,
};

/// Tokens per second over the current epoch, measured from the first step
/// the metric sees (so start-up, compilation of kernels on the first step and
/// validation are left out): `(iteration - first) · tokens_per_iteration /
/// elapsed`. Logged as `Tokens per second` next to the loss; the step outputs are read
/// back every step, so on asynchronous GPU backends the clock measures
/// finished work.
///
/// ```
/// use arbitor_train::throughput::TokensPerSecondMetric;
/// use burn::train::metric::Metric;
/// let metric = TokensPerSecondMetric::new(512);
/// assert_eq!(metric.name().as_str(), "Tokens per second");
/// ```
#[derive(Clone)]
pub struct TokensPerSecondMetric {
    name: MetricName,
    tokens_per_iteration: usize,
    state: NumericMetricState,
    start: Option<(Instant, usize)>,
}

impl TokensPerSecondMetric {
    /// The metric of a run whose optimizer steps each consume
    /// `tokens_per_iteration` tokens (batch × gradient accumulation).
    pub fn new(tokens_per_iteration: usize) -> Self {
        Self {
            name: Arc::new("Tokens per second".to_string()),
            tokens_per_iteration,
            state: NumericMetricState::default(),
            start: None,
        }
    }
}

impl Metric for TokensPerSecondMetric {
    type Input = ();

    fn update(&mut self, _: &(), metadata: &MetricMetadata) -> SerializedEntry {
        let iteration = metadata
            .iteration
            .unwrap_or(metadata.progress.items_processed);
        let rate = match self.start {
            Some((start, first)) => {
                let seconds = start.elapsed().as_secs_f64();
                if seconds > 0.0 {
                    (iteration.saturating_sub(first) * self.tokens_per_iteration) as f64 / seconds
                } else {
                    0.0
                }
            }
            None => {
                self.start = Some((Instant::now(), iteration));
                0.0
            }
        };
        self.state.update(
            rate,
            1,
            FormatOptions::new(self.name()).unit("tok/s").precision(0),
        )
    }

    fn clear(&mut self) {
        self.start = None;
        self.state.reset();
    }

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn attributes(&self) -> MetricAttributes {
        NumericAttributes {
            unit: Some("tok/s".to_string()),
            higher_is_better: true,
        }
        .into()
    }
}

impl Numeric for TokensPerSecondMetric {
    fn value(&self) -> NumericEntry {
        self.state.current_value()
    }

    fn running_value(&self) -> NumericEntry {
        self.state.running_value()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_counts_tokens_since_the_first_step() {
        let mut metric = TokensPerSecondMetric::new(100);
        let progress = burn::data::dataloader::Progress {
            items_processed: 1,
            items_total: 1,
        };
        let mut meta = MetricMetadata {
            progress: progress.clone(),
            global_progress: progress,
            iteration: Some(1),
            lr: None,
        };
        metric.update(&(), &meta);
        std::thread::sleep(std::time::Duration::from_millis(50));
        meta.iteration = Some(11);
        metric.update(&(), &meta);
        // 1000 tokens in a bit over 50 ms: below 20,000 tok/s, above 1,000.
        let rate = match metric.value() {
            NumericEntry::Value(v) => v,
            NumericEntry::Aggregated {
                aggregated_value, ..
            } => aggregated_value,
        };
        assert!(rate > 1_000.0 && rate < 20_000.0, "{rate}");
    }
}
