//! The vector quantizer: nearest ternary code, straight-through gradient,
//! commitment loss.

use burn::{
    config::Config,
    module::Module,
    tensor::{backend::Backend, Int, Tensor},
};
use burn_ternary::{TernaryBackend, TernaryResult};

use crate::{
    layers::{ArbEmbedding, LayerKind},
    util::{check_width, or_panic, positive},
};

/// Configuration of a [`VectorQuantizer`].
#[derive(Config, Debug)]
pub struct VectorQuantizerConfig {
    /// Number of codes in the codebook.
    pub n_codes: usize,
    /// Width of each code (and of the quantized input).
    pub d_code: usize,
    /// Weight `β` of the commitment term `β·‖x − sg(q)‖²`.
    #[config(default = 0.25)]
    pub commitment: f64,
    /// Which layers it is built from.
    #[config(default = "LayerKind::Ternary")]
    pub layers: LayerKind,
}

impl VectorQuantizerConfig {
    /// Builds the quantizer, or names the invalid config value.
    pub fn try_init<B: Backend>(&self, device: &B::Device) -> TernaryResult<VectorQuantizer<B>> {
        positive("n_codes", self.n_codes)?;
        positive("d_code", self.d_code)?;
        if !(self.commitment.is_finite() && self.commitment >= 0.0) {
            return Err(crate::util::config_error(
                "commitment",
                self.commitment,
                "must be finite and non-negative",
            ));
        }
        Ok(VectorQuantizer {
            codebook: self.layers.embedding(self.n_codes, self.d_code, device)?,
            commitment: self.commitment,
        })
    }

    /// Builds the quantizer.
    ///
    /// # Panics
    /// On an invalid config value (the message names it).
    pub fn init<B: Backend>(&self, device: &B::Device) -> VectorQuantizer<B> {
        or_panic(self.try_init(device))
    }
}

/// What a [`VectorQuantizer`] returns.
#[derive(Debug, Clone)]
pub struct VqOutput<B: Backend> {
    /// The quantized input `[batch, seq, d_code]`: the code values forward,
    /// the identity backward (straight-through).
    pub quantized: Tensor<B, 3>,
    /// Index of the nearest code per position, `[batch, seq]`.
    pub indices: Tensor<B, 2, Int>,
    /// Codebook loss `‖sg(x) − q‖²` plus `β·‖x − sg(q)‖²` (means), `[1]`.
    pub loss: Tensor<B, 1>,
}

/// A vector quantizer over a codebook ([`ArbEmbedding`], ternary unless
/// built with [`LayerKind::Dense`]).
///
/// Each input vector is replaced by its nearest code (squared Euclidean
/// distance to the code vectors, `s_i · T_i` for a ternary codebook). The
/// gradient passes straight through to the input; the codebook learns from
/// the codebook loss through its lookup (a ternary table through its
/// gradient port), and the commitment loss pulls the input toward its code.
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use arbitor_models::vq::VectorQuantizerConfig;
///
/// let device = Default::default();
/// let vq = VectorQuantizerConfig::new(16, 8).init::<Flex>(&device);
/// let out = vq.forward(Tensor::<Flex, 3>::ones([2, 3, 8], &device));
/// assert_eq!(out.quantized.dims(), [2, 3, 8]);
/// assert_eq!(out.indices.dims(), [2, 3]);
/// ```
#[derive(Module, Debug)]
pub struct VectorQuantizer<B: Backend> {
    /// The codebook `[n_codes, d_code]`.
    pub codebook: ArbEmbedding<B>,
    /// Commitment weight `β`.
    pub commitment: f64,
}

impl<B: TernaryBackend> VectorQuantizer<B> {
    /// Index of the nearest code for each row of `flat: [n, d_code]`, `[n]`.
    pub fn nearest(&self, flat: Tensor<B, 2>) -> Tensor<B, 1, Int> {
        // Only the argmin is used, so no gradient is needed.
        let codes = self.codebook.table().detach(); // [K, d]
        let n = flat.dims()[0];
        let x = flat.detach();
        let x2 = x.clone().powf_scalar(2.0).sum_dim(1); // [n, 1]
        let c2 = codes.clone().powf_scalar(2.0).sum_dim(1).transpose(); // [1, K]
        let dist = x2 - x.matmul(codes.transpose()).mul_scalar(2.0) + c2;
        dist.argmin(1).reshape([n])
    }

    /// Quantizes `x: [batch, seq, d_code]`, or reports a width mismatch.
    pub fn try_forward(&self, x: Tensor<B, 3>) -> TernaryResult<VqOutput<B>> {
        let [_, d] = self.codebook.dims();
        check_width("x", &x, d)?;
        let [batch, seq, _] = x.dims();
        let flat = x.reshape([batch * seq, d]);
        let indices = self.nearest(flat.clone());
        // The argmin is in range by construction: no id check, no device read.
        let q = self.codebook.lookup_unchecked(indices.clone());
        let codebook_loss = (q.clone() - flat.clone().detach()).powf_scalar(2.0).mean();
        let commit_loss = (flat.clone() - q.clone().detach()).powf_scalar(2.0).mean();
        let loss = codebook_loss + commit_loss.mul_scalar(self.commitment);
        let quantized = flat.clone() + (q - flat).detach();
        Ok(VqOutput {
            quantized: quantized.reshape([batch, seq, d]),
            indices: indices.reshape([batch, seq]),
            loss,
        })
    }

    /// Quantizes `x: [batch, seq, d_code]`.
    ///
    /// # Panics
    /// If the last dimension of `x` is not `d_code`.
    pub fn forward(&self, x: Tensor<B, 3>) -> VqOutput<B> {
        or_panic(self.try_forward(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    #[test]
    fn shapes_audit_and_train_step() {
        let config = VectorQuantizerConfig::new(32, 12);
        let vq = config.init::<AD>(&Default::default());
        assert_audit(&vq, 32 * 12);
        let out = vq.forward(randn([2, 5, 12], 1));
        assert_eq!(out.quantized.dims(), [2, 5, 12]);
        assert_eq!(out.indices.dims(), [2, 5]);
        let x = randn([2, 5, 12], 2);
        train_step(
            vq,
            |vq| {
                let out = vq.forward(x.clone());
                out.quantized.sum().mul_scalar(0.01) + out.loss
            },
            &[],
        );
    }

    #[test]
    fn picks_the_nearest_code_and_passes_the_gradient_straight_through() {
        let vq = VectorQuantizerConfig::new(8, 4).init::<AD>(&Default::default());
        let codes = vq.codebook.table().detach();
        // Inputs are codes 5, 2, 7 plus a little noise: each must map back to its code.
        let ids = Tensor::<AD, 1, Int>::from_ints([5, 2, 7], &Default::default());
        let rows = codes.select(0, ids.clone());
        let x = (rows.clone() + randn([3, 4], 9).mul_scalar(1e-3))
            .reshape([1, 3, 4])
            .require_grad();
        let out = vq.forward(x.clone());
        let got: Vec<i64> = out
            .indices
            .clone()
            .into_data()
            .convert::<i64>()
            .to_vec()
            .unwrap();
        // Duplicate codes are possible in a random ternary table; compare code values.
        let q: Vec<f32> = out.quantized.clone().into_data().to_vec().unwrap();
        let expected: Vec<f32> = rows.into_data().to_vec().unwrap();
        for (a, b) in q.iter().zip(&expected) {
            assert!(
                (a - b).abs() < 1e-5,
                "indices {got:?}: {q:?} vs {expected:?}"
            );
        }
        let grads = out.quantized.sum().backward();
        let gx: Vec<f32> = x.grad(&grads).unwrap().into_data().to_vec().unwrap();
        assert!(gx.iter().all(|g| (*g - 1.0).abs() < 1e-6), "{gx:?}");
    }

    #[test]
    fn bad_width_is_named() {
        let vq = VectorQuantizerConfig::new(8, 4).init::<AD>(&Default::default());
        let err = vq.try_forward(randn([1, 2, 5], 0)).unwrap_err();
        assert!(err.to_string().contains("`x`"), "{err}");
        let err = VectorQuantizerConfig::new(0, 4)
            .try_init::<AD>(&Default::default())
            .unwrap_err();
        assert!(err.to_string().contains("n_codes"), "{err}");
    }
}
