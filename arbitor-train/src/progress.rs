//! A concise progress display for Burn's `Learner`: one line every few
//! iterations with the epoch, the step, the latest metrics and the throughput,
//! and one line per validation pass.

use std::{collections::HashMap, time::Instant};

use burn::train::{
    metric::{MetricDefinition, MetricId},
    renderer::{
        EvaluationName, EvaluationProgress, MetricState, MetricsRenderer,
        MetricsRendererEvaluation, MetricsRendererTraining, ProgressType, TrainingProgress,
    },
};

/// Prints training progress as plain lines (fit for logs and CI).
pub struct LineRenderer {
    every: usize,
    names: HashMap<MetricId, String>,
    train: Vec<(String, String)>,
    valid: Vec<(String, String)>,
    last: Option<(Instant, usize)>,
}

impl LineRenderer {
    /// Prints a training line every `every` iterations, at each epoch's end
    /// and after the run's first step (on a GPU, when the first step's kernels
    /// have compiled).
    pub fn new(every: usize) -> Self {
        Self {
            every: every.max(1),
            names: HashMap::new(),
            train: Vec::new(),
            valid: Vec::new(),
            last: None,
        }
    }

    fn record(&mut self, state: MetricState, valid: bool) {
        let entry = match &state {
            MetricState::Generic(entry) | MetricState::Numeric(entry, _) => entry,
        };
        let name = self
            .names
            .get(&entry.metric_id)
            .cloned()
            .unwrap_or_else(|| "metric".into());
        let value = entry.serialized_entry.formatted.clone();
        let list = if valid {
            &mut self.valid
        } else {
            &mut self.train
        };
        match list.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => list.push((name, value)),
        }
    }

    fn metrics(list: &[(String, String)]) -> String {
        list.iter()
            .map(|(n, v)| format!("{n} {v}"))
            .collect::<Vec<_>>()
            .join("  ")
    }
}

impl MetricsRendererTraining for LineRenderer {
    fn update_train(&mut self, state: MetricState) {
        self.record(state, false);
    }

    fn update_valid(&mut self, state: MetricState) {
        self.record(state, true);
    }

    fn render_train(&mut self, item: TrainingProgress, _indicators: Vec<ProgressType>) {
        let Some(progress) = item.progress else {
            return;
        };
        let iteration = item.iteration.unwrap_or(progress.items_processed);
        let at_end = progress.items_processed >= progress.items_total;
        let first = iteration == 1 && item.global_progress.items_processed <= 1;
        if !iteration.is_multiple_of(self.every) && !at_end && !first {
            return;
        }
        let now = Instant::now();
        let rate = match self.last {
            Some((then, items)) if progress.items_processed > items => {
                format!(
                    "  {:.0} items/s",
                    (progress.items_processed - items) as f64 / (now - then).as_secs_f64()
                )
            }
            _ => String::new(),
        };
        self.last = Some((now, if at_end { 0 } else { progress.items_processed }));
        println!(
            "epoch {}/{}  step {iteration}  [{}/{} items]  {}{rate}",
            item.global_progress.items_processed,
            item.global_progress.items_total,
            progress.items_processed,
            progress.items_total,
            Self::metrics(&self.train)
        );
    }

    fn render_valid(&mut self, item: TrainingProgress, _indicators: Vec<ProgressType>) {
        if let Some(progress) = item.progress
            && progress.items_processed >= progress.items_total
        {
            println!(
                "epoch {}/{}  validation  {}",
                item.global_progress.items_processed,
                item.global_progress.items_total,
                Self::metrics(&self.valid)
            );
        }
    }
}

impl MetricsRendererEvaluation for LineRenderer {
    fn update_test(&mut self, _name: EvaluationName, state: MetricState) {
        self.record(state, true);
    }

    fn render_test(&mut self, _item: EvaluationProgress, _indicators: Vec<ProgressType>) {}
}

impl MetricsRenderer for LineRenderer {
    fn manual_close(&mut self) {}

    fn register_metric(&mut self, definition: MetricDefinition) {
        self.names.insert(definition.metric_id, definition.name);
    }
}
