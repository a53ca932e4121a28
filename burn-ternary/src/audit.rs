//! The ternary audit: what a module holds, split into ternary state and float state.

use core::fmt;

use burn::{module::Module, tensor::backend::Backend};

use crate::{
    packing::{memory_words, trit_words},
    visit::collect,
};

/// What a module holds. Audit the training module (on an autodiff backend):
/// whether a float tensor is trainable is only visible there.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditReport {
    /// Number of ternary weight tensors.
    pub ternary_tensors: usize,
    /// Logical ternary weights (Σ rows·cols).
    pub logical_ternary_weights: usize,
    /// Bytes of persistent ternary training state (trits, update memory, scale codes), as stored.
    pub ternary_state_bytes: usize,
    /// Float parameters autodiff trains (elements).
    pub trainable_float_params: usize,
    /// Float parameters that are frozen (elements).
    pub frozen_float_params: usize,
    /// Float buffers: running statistics (`running_*` fields, Burn's convention), elements.
    pub float_buffers: usize,
    /// Bytes of all float state.
    pub float_bytes: usize,
}

impl AuditReport {
    /// Ternary training state per logical weight, in bytes.
    pub fn state_bytes_per_weight(&self) -> f64 {
        self.ternary_state_bytes as f64 / self.logical_ternary_weights.max(1) as f64
    }

    /// Whether the module trains nothing but ternary state.
    pub fn is_pure_ternary(&self) -> bool {
        self.trainable_float_params == 0 && self.frozen_float_params == 0 && self.float_buffers == 0
    }
}

/// Bytes of persistent state of one `[rows, cols]` ternary weight in this
/// crate's layout: packed trits, packed update memory, one `i32` code per row.
pub fn ternary_state_bytes(rows: usize, cols: usize) -> usize {
    4 * rows * (trit_words(cols) + memory_words(cols) + 1)
}

/// Audits any module.
///
/// ```
/// use burn::backend::{Autodiff, NdArray};
/// use burn_ternary::{audit::audit, nn::TernaryLinearConfig};
///
/// let layer = TernaryLinearConfig::new(64, 32).init::<Autodiff<NdArray>>(&Default::default());
/// let report = audit(&layer);
/// assert_eq!(report.logical_ternary_weights, 64 * 32);
/// assert_eq!(report.trainable_float_params, 0);
/// println!("{report}");
/// ```
pub fn audit<B: Backend, M: Module<B>>(module: &M) -> AuditReport {
    let state = collect::<B, M>(module);
    let mut report = AuditReport {
        ternary_tensors: state.ternary.len(),
        ..Default::default()
    };
    for weight in &state.ternary {
        report.logical_ternary_weights += weight.dims[0] * weight.dims[1];
        let bytes = |numel: usize, dtype: burn::tensor::DType| numel * dtype.size();
        report.ternary_state_bytes += bytes(
            weight.trits.1.shape().num_elements(),
            weight.trits.1.dtype(),
        ) + bytes(
            weight.memory.1.shape().num_elements(),
            weight.memory.1.dtype(),
        ) + bytes(
            weight.scale_code.1.shape().num_elements(),
            weight.scale_code.1.dtype(),
        );
    }
    for float in &state.floats {
        report.float_bytes += float.bytes;
        let field = float.path.rsplit('.').next().unwrap_or_default();
        if float.trainable {
            report.trainable_float_params += float.numel;
        } else if field.starts_with("running_") {
            report.float_buffers += float.numel;
        } else {
            report.frozen_float_params += float.numel;
        }
    }
    report
}

/// `n` with its thousands grouped by commas, as the audit prints counts.
///
/// ```
/// assert_eq!(burn_ternary::audit::thousands(41_087_552), "41,087,552");
/// ```
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl fmt::Display for AuditReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows = [
            ("ternary tensors", thousands(self.ternary_tensors)),
            (
                "logical ternary weights",
                thousands(self.logical_ternary_weights),
            ),
            (
                "ternary training state",
                format!(
                    "{} B ({:.2} MB, {:.3} B/weight)",
                    thousands(self.ternary_state_bytes),
                    self.ternary_state_bytes as f64 / 1e6,
                    self.state_bytes_per_weight()
                ),
            ),
            (
                "trainable float params",
                thousands(self.trainable_float_params),
            ),
            ("frozen float params", thousands(self.frozen_float_params)),
            ("float buffers", thousands(self.float_buffers)),
        ];
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (key, value) in rows {
            writeln!(f, "{key:<width$} : {value}")?;
        }
        Ok(())
    }
}
