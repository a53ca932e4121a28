//! Step outputs with several named losses, and the Burn metric that logs each
//! of them: a run with several heads logs every head's loss (and measures
//! such as codebook perplexity or ACT steps) per step, next to the total
//! `Loss`, in `<run dir>/{train,valid}/epoch-N/<Name>.log`.

use std::sync::Arc;

use burn::{
    backend::Flex,
    tensor::{backend::Backend, Tensor, TensorData, Transaction},
    train::{
        metric::{
            state::{FormatOptions, NumericMetricState},
            Adaptor, LossInput, Metric, MetricAttributes, MetricMetadata, MetricName, Numeric,
            NumericAttributes, NumericEntry, SerializedEntry,
        },
        ClassificationOutput, ItemLazy,
    },
};

/// The output of a train or validation step: the total loss (what the
/// optimizer minimizes) and named scalar parts, each `[1]`.
pub struct TaskOutput<B: Backend> {
    /// The total loss, `[1]`.
    pub loss: Tensor<B, 1>,
    /// Named parts of the loss and other per-step measures, each `[1]`.
    pub parts: Vec<(&'static str, Tensor<B, 1>)>,
}

impl<B: Backend> TaskOutput<B> {
    /// An output of `loss` and its named `parts`.
    pub fn new(loss: Tensor<B, 1>, parts: Vec<(&'static str, Tensor<B, 1>)>) -> Self {
        Self { loss, parts }
    }

    /// The total loss and the output itself, what a
    /// [`TaskModel`](crate::fit::TaskModel) step returns.
    pub fn with_loss(self) -> (Tensor<B, 1>, Self) {
        (self.loss.clone(), self)
    }
}

/// A [`TaskOutput`] read back to the host, ready for the metrics.
pub struct TaskItem {
    loss: Tensor<Flex, 1>,
    values: Vec<(&'static str, f64)>,
}

impl<B: Backend> ItemLazy for TaskOutput<B> {
    type ItemSync = TaskItem;

    fn sync(self) -> TaskItem {
        let names: Vec<&'static str> = self.parts.iter().map(|(n, _)| *n).collect();
        let mut transaction = Transaction::default().register(self.loss);
        for (_, part) in self.parts {
            transaction = transaction.register(part);
        }
        let mut data = transaction.execute().into_iter();
        let loss: TensorData = data.next().expect("the loss was registered first");
        let values = names
            .into_iter()
            .zip(data)
            .map(|(name, d)| {
                let v = d.convert::<f64>().to_vec::<f64>().unwrap_or_default();
                (name, v.first().copied().unwrap_or(f64::NAN))
            })
            .collect();
        TaskItem {
            loss: Tensor::from_data(loss.convert::<f32>(), &Default::default()),
            values,
        }
    }
}

impl Adaptor<LossInput<Flex>> for TaskItem {
    fn adapt(&self) -> LossInput<Flex> {
        LossInput::new(self.loss.clone())
    }
}

/// The named values of one step, the input of a [`ScalarMetric`].
pub struct ScalarsInput(Vec<(&'static str, f64)>);

impl Adaptor<ScalarsInput> for TaskItem {
    fn adapt(&self) -> ScalarsInput {
        ScalarsInput(self.values.clone())
    }
}

/// Classification steps (the byte-level models) have no named parts.
impl Adaptor<ScalarsInput> for ClassificationOutput<Flex> {
    fn adapt(&self) -> ScalarsInput {
        ScalarsInput(Vec::new())
    }
}

/// Logs one named value of the step outputs as a numeric metric (mean over
/// the epoch, like Burn's `LossMetric`).
#[derive(Clone)]
pub struct ScalarMetric {
    key: &'static str,
    name: MetricName,
    state: NumericMetricState,
}

impl ScalarMetric {
    /// The metric of the value named `key` (also its log file name).
    pub fn new(key: &'static str) -> Self {
        Self {
            key,
            name: Arc::new(key.to_string()),
            state: NumericMetricState::default(),
        }
    }
}

impl Metric for ScalarMetric {
    type Input = ScalarsInput;

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn attributes(&self) -> MetricAttributes {
        NumericAttributes {
            unit: None,
            higher_is_better: false,
        }
        .into()
    }

    fn update(&mut self, input: &ScalarsInput, _: &MetricMetadata) -> SerializedEntry {
        // A step that does not report the value logs NaN, so a missing part
        // is visible in the logs instead of silently skipped.
        let value = input
            .0
            .iter()
            .find(|(k, _)| *k == self.key)
            .map(|(_, v)| *v)
            .unwrap_or(f64::NAN);
        self.state
            .update(value, 1, FormatOptions::new(self.name()).precision(4))
    }

    fn clear(&mut self) {
        self.state.reset()
    }
}

impl Numeric for ScalarMetric {
    fn value(&self) -> NumericEntry {
        self.state.current_value()
    }

    fn running_value(&self) -> NumericEntry {
        self.state.running_value()
    }
}

/// Perplexity `exp(H)` of the code histogram `counts` and the fraction of
/// its `n_codes` codes that occur at least once.
pub fn code_usage(counts: &[usize]) -> (f64, f64) {
    let total: usize = counts.iter().sum();
    if total == 0 || counts.is_empty() {
        return (0.0, 0.0);
    }
    let entropy: f64 = counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| *c as f64 / total as f64)
        .map(|p| -p * p.ln())
        .sum();
    let used = counts.iter().filter(|c| **c > 0).count();
    (entropy.exp(), used as f64 / counts.len() as f64)
}

/// Histogram of `indices` over `n_codes` codes (ids outside are ignored).
pub fn histogram(indices: &[i64], n_codes: usize) -> Vec<usize> {
    let mut counts = vec![0usize; n_codes];
    for i in indices {
        if let Some(c) = usize::try_from(*i).ok().and_then(|i| counts.get_mut(i)) {
            *c += 1;
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_usage_of_uniform_and_single_code_histograms() {
        let (ppl, used) = code_usage(&[5, 5, 5, 5, 0, 0, 0, 0]);
        assert!((ppl - 4.0).abs() < 1e-9 && (used - 0.5).abs() < 1e-12);
        let (ppl, used) = code_usage(&histogram(&[3, 3, 3, 99, -1], 4));
        assert!((ppl - 1.0).abs() < 1e-12 && (used - 0.25).abs() < 1e-12);
    }

    #[test]
    fn task_output_syncs_every_part() {
        let device = Default::default();
        let out = TaskOutput::<Flex>::new(
            Tensor::from_floats([2.5], &device),
            vec![
                ("A", Tensor::from_floats([1.0], &device)),
                ("B", Tensor::from_floats([1.5], &device)),
            ],
        );
        let item = out.sync();
        let ScalarsInput(values) = item.adapt();
        assert_eq!(values, vec![("A", 1.0), ("B", 1.5)]);
        let _: LossInput<Flex> = item.adapt();
        assert_eq!(item.loss.clone().into_scalar(), 2.5);
    }
}
