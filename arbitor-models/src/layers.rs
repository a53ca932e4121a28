//! The layer kind of a component: burn-ternary's packed trits or Burn's float
//! layers (the dense twin), behind one [`ArbLinear`] and one [`ArbEmbedding`].

use burn::{
    config::Config,
    module::{Content, Module, ModuleDisplay},
    nn::{Embedding, EmbeddingConfig, Linear, LinearConfig},
    tensor::{backend::Backend, Int, Tensor},
};
use burn_ternary::{
    nn::{TernaryEmbedding, TernaryEmbeddingConfig, TernaryLinear, TernaryLinearConfig},
    TernaryBackend, TernaryResult, TernaryWeight,
};

use crate::util::{check_ids, or_panic, positive, shape_error};

/// Which layers a component is built from.
///
/// ```
/// use burn::backend::Flex;
/// use arbitor_models::layers::LayerKind;
///
/// let device = Default::default();
/// let dense = LayerKind::Dense.linear::<Flex>(48, 16, &device).unwrap();
/// let ternary = LayerKind::Ternary.linear::<Flex>(48, 16, &device).unwrap();
/// assert_eq!(dense.dims(), ternary.dims());
/// assert_eq!(dense.dims(), [16, 48]);
/// ```
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum LayerKind {
    /// burn-ternary's layers: packed trits with per-row scales, no float
    /// parameters, trained by the update-memory
    /// [`TernaryOptimizer`](burn_ternary::TernaryOptimizer).
    Ternary,
    /// Burn's float layers, `nn::Linear` (no bias) and `nn::Embedding`,
    /// trained by AdamW: the dense twin that measures the ternary-vs-dense
    /// ratio on the same architecture.
    Dense,
}

impl LayerKind {
    /// A linear layer `d_input → d_output` of this kind (no bias), or names
    /// a zero dimension.
    pub fn linear<B: Backend>(
        self,
        d_input: usize,
        d_output: usize,
        device: &B::Device,
    ) -> TernaryResult<ArbLinear<B>> {
        Ok(match self {
            LayerKind::Ternary => {
                ArbLinear::Ternary(TernaryLinearConfig::new(d_input, d_output).try_init(device)?)
            }
            LayerKind::Dense => {
                positive("d_input", d_input)?;
                positive("d_output", d_output)?;
                ArbLinear::Dense(
                    LinearConfig::new(d_input, d_output)
                        .with_bias(false)
                        .init(device),
                )
            }
        })
    }

    /// An embedding table `[n_embedding, d_model]` of this kind, or names a
    /// zero dimension.
    pub fn embedding<B: Backend>(
        self,
        n_embedding: usize,
        d_model: usize,
        device: &B::Device,
    ) -> TernaryResult<ArbEmbedding<B>> {
        Ok(match self {
            LayerKind::Ternary => ArbEmbedding::Ternary(
                TernaryEmbeddingConfig::new(n_embedding, d_model).try_init(device)?,
            ),
            LayerKind::Dense => {
                positive("n_embedding", n_embedding)?;
                positive("d_model", d_model)?;
                ArbEmbedding::Dense(EmbeddingConfig::new(n_embedding, d_model).init(device))
            }
        })
    }
}

/// A linear layer without bias, ternary or dense (see [`LayerKind`]).
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use arbitor_models::layers::LayerKind;
///
/// let device = Default::default();
/// let layer = LayerKind::Dense.linear::<Flex>(20, 8, &device).unwrap();
/// let x = Tensor::<Flex, 3>::ones([2, 5, 20], &device);
/// assert_eq!(layer.forward(x).dims(), [2, 5, 8]);
/// ```
#[derive(Module, Debug)]
#[module(custom_display)]
// Burn's Module derive takes the layer itself, not a box; a layer is built once and not moved in hot loops.
#[allow(clippy::large_enum_variant)]
pub enum ArbLinear<B: Backend> {
    /// burn-ternary's layer.
    Ternary(TernaryLinear<B>),
    /// Burn's float layer (weight `[d_input, d_output]`, no bias).
    Dense(Linear<B>),
}

impl<B: Backend> ModuleDisplay for ArbLinear<B> {
    fn custom_content(&self, content: Content) -> Option<Content> {
        match self {
            ArbLinear::Ternary(layer) => content.add_single(layer),
            ArbLinear::Dense(layer) => content.add_single(layer),
        }
        .optional()
    }
}

impl<B: Backend> ArbLinear<B> {
    /// `[d_output, d_input]`, the order of [`TernaryLinear`]'s weight.
    pub fn dims(&self) -> [usize; 2] {
        match self {
            ArbLinear::Ternary(layer) => layer.weight.dims(),
            ArbLinear::Dense(layer) => {
                let [d_input, d_output] = layer.weight.dims();
                [d_output, d_input]
            }
        }
    }

    /// The ternary weight (`[d_output, d_input]`) of the ternary kind, `None` for the dense kind.
    pub fn ternary_weight(&self) -> Option<&TernaryWeight<B>> {
        match self {
            ArbLinear::Ternary(layer) => Some(&layer.weight),
            ArbLinear::Dense(_) => None,
        }
    }
}

impl<B: TernaryBackend> ArbLinear<B> {
    /// Applies the layer to `x: [..., d_input]`, giving `[..., d_output]`, or
    /// reports a mismatched last dimension (naming `x`).
    pub fn try_forward<const D: usize>(&self, x: Tensor<B, D>) -> TernaryResult<Tensor<B, D>> {
        match self {
            ArbLinear::Ternary(layer) => layer.try_forward(x),
            ArbLinear::Dense(layer) => {
                let [_, d_input] = self.dims();
                let dims = x.dims();
                if D == 0 || dims[D - 1] != d_input {
                    return Err(shape_error(
                        "x",
                        format!("[..., {d_input}] (d_input)"),
                        &dims,
                    ));
                }
                Ok(layer.forward(x))
            }
        }
    }

    /// Applies the layer to `x: [..., d_input]`, giving `[..., d_output]`.
    ///
    /// # Panics
    /// If the last dimension of `x` is not `d_input` (the message gives both shapes).
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        or_panic(self.try_forward(x))
    }
}

/// An embedding table, ternary or dense (see [`LayerKind`]).
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::{Int, Tensor};
/// use arbitor_models::layers::LayerKind;
///
/// let device = Default::default();
/// let table = LayerKind::Dense.embedding::<Flex>(256, 32, &device).unwrap();
/// let ids = Tensor::<Flex, 2, Int>::from_ints([[1, 2, 3], [4, 5, 255]], &device);
/// assert_eq!(table.forward(ids).dims(), [2, 3, 32]);
/// assert_eq!(table.table().dims(), [256, 32]);
/// ```
#[derive(Module, Debug)]
#[module(custom_display)]
// Burn's Module derive takes the layer itself, not a box; a layer is built once and not moved in hot loops.
#[allow(clippy::large_enum_variant)]
pub enum ArbEmbedding<B: Backend> {
    /// burn-ternary's table.
    Ternary(TernaryEmbedding<B>),
    /// Burn's float table.
    Dense(Embedding<B>),
}

impl<B: Backend> ModuleDisplay for ArbEmbedding<B> {
    fn custom_content(&self, content: Content) -> Option<Content> {
        match self {
            ArbEmbedding::Ternary(table) => content.add_single(table),
            ArbEmbedding::Dense(table) => content.add_single(table),
        }
        .optional()
    }
}

impl<B: Backend> ArbEmbedding<B> {
    /// `[n_embedding, d_model]`.
    pub fn dims(&self) -> [usize; 2] {
        match self {
            ArbEmbedding::Ternary(table) => table.weight.dims(),
            ArbEmbedding::Dense(table) => table.weight.dims(),
        }
    }

    /// The ternary table of the ternary kind, `None` for the dense kind.
    pub fn ternary_weight(&self) -> Option<&TernaryWeight<B>> {
        match self {
            ArbEmbedding::Ternary(table) => Some(&table.weight),
            ArbEmbedding::Dense(_) => None,
        }
    }
}

impl<B: TernaryBackend> ArbEmbedding<B> {
    /// Looks up `ids: [n]`, giving `[n, d_model]`, or reports an id out of
    /// range (naming `ids`).
    pub fn try_lookup(&self, ids: Tensor<B, 1, Int>) -> TernaryResult<Tensor<B, 2>> {
        match self {
            ArbEmbedding::Ternary(table) => table.try_lookup(ids),
            ArbEmbedding::Dense(table) => {
                check_ids(&ids, self.dims()[0], "ids")?;
                Ok(table.weight.val().select(0, ids))
            }
        }
    }

    /// Looks up `ids: [batch, seq]`, giving `[batch, seq, d_model]`, or
    /// reports an id out of range (naming `ids`).
    pub fn try_forward(&self, ids: Tensor<B, 2, Int>) -> TernaryResult<Tensor<B, 3>> {
        match self {
            ArbEmbedding::Ternary(table) => table.try_forward(ids),
            ArbEmbedding::Dense(table) => {
                check_ids(&ids, self.dims()[0], "ids")?;
                Ok(table.forward(ids))
            }
        }
    }

    /// Looks up `ids: [batch, seq]`, giving `[batch, seq, d_model]`.
    ///
    /// # Panics
    /// If an id is negative or not below `n_embedding` (the message gives the id).
    pub fn forward(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        or_panic(self.try_forward(ids))
    }

    /// Looks up `ids: [n]` that the model computed itself and knows are in
    /// range (hashes reduced modulo the rows, an argmin over the rows),
    /// giving `[n, d_model]` without reading anything back from the device.
    pub fn lookup_unchecked(&self, ids: Tensor<B, 1, Int>) -> Tensor<B, 2> {
        match self {
            ArbEmbedding::Ternary(table) => table.lookup_unchecked(ids),
            ArbEmbedding::Dense(table) => table.weight.val().select(0, ids),
        }
    }

    /// The whole table `[n_embedding, d_model]` as floats, differentiable
    /// for both kinds (the ternary table goes through its gradient port, as
    /// a lookup of every row does, without the lookup's id check).
    pub fn table(&self) -> Tensor<B, 2> {
        match self {
            ArbEmbedding::Ternary(table) => {
                let [rows, _] = table.weight.dims();
                let device = table.weight.grad_port.val().device();
                table.lookup_unchecked(Tensor::<B, 1, Int>::arange(0..rows as i64, &device))
            }
            ArbEmbedding::Dense(table) => table.weight.val(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
    use burn_ternary::audit::audit;

    const KINDS: [LayerKind; 2] = [LayerKind::Ternary, LayerKind::Dense];

    #[test]
    fn both_kinds_shapes_and_dims() {
        let device = Default::default();
        for kind in KINDS {
            let linear = kind.linear::<AD>(12, 5, &device).unwrap();
            assert_eq!(linear.dims(), [5, 12], "{kind:?}");
            let ternary = kind == LayerKind::Ternary;
            assert_eq!(linear.ternary_weight().is_some(), ternary);
            assert_eq!(linear.forward(randn([2, 3, 12], 1)).dims(), [2, 3, 5]);
            assert_eq!(linear.forward(randn([4, 12], 1)).dims(), [4, 5]);
            let table = kind.embedding::<AD>(10, 6, &device).unwrap();
            assert_eq!(table.dims(), [10, 6], "{kind:?}");
            assert_eq!(table.ternary_weight().is_some(), ternary);
            let ids = random_ids([2, 4], 10, 2);
            let rows = table.forward(ids.clone());
            assert_eq!(rows.dims(), [2, 4, 6]);
            assert_eq!(table.try_lookup(ids.reshape([8])).unwrap().dims(), [8, 6]);
            // The table's rows are what a lookup returns.
            let all = table.table();
            assert_eq!(all.dims(), [10, 6]);
            let ids = Tensor::<AD, 1, Int>::from_ints([3, 0, 9], &device);
            let want: Vec<f32> = all.select(0, ids.clone()).into_data().to_vec().unwrap();
            let got: Vec<f32> = table.try_lookup(ids).unwrap().into_data().to_vec().unwrap();
            assert_eq!(want, got, "{kind:?}");
        }
    }

    #[test]
    fn the_ternary_kind_audits_pure_and_the_dense_kind_float() {
        let device = Default::default();
        let linear = LayerKind::Ternary.linear::<AD>(12, 5, &device).unwrap();
        assert_audit(&linear, 60);
        let table = LayerKind::Ternary.embedding::<AD>(10, 6, &device).unwrap();
        assert_audit(&table, 60);
        let linear = LayerKind::Dense.linear::<AD>(12, 5, &device).unwrap();
        let report = audit::<AD, _>(&linear);
        assert_eq!(
            (
                report.logical_ternary_weights,
                report.trainable_float_params
            ),
            (0, 60),
            "{report}"
        );
        assert_eq!(linear.num_params(), 60);
        let table = LayerKind::Dense.embedding::<AD>(10, 6, &device).unwrap();
        assert_eq!(audit::<AD, _>(&table).trainable_float_params, 60);
    }

    #[test]
    fn display_is_the_inner_layer() {
        let device = Default::default();
        let shown = format!(
            "{}",
            LayerKind::Ternary.linear::<AD>(12, 5, &device).unwrap()
        );
        assert!(shown.starts_with("TernaryLinear {d_input: 12"), "{shown}");
        let shown = format!(
            "{}",
            LayerKind::Dense.embedding::<AD>(10, 6, &device).unwrap()
        );
        assert!(shown.starts_with("Embedding {"), "{shown}");
    }

    #[test]
    fn bad_width_bad_id_and_zero_size_are_named() {
        let device = Default::default();
        for kind in KINDS {
            let linear = kind.linear::<AD>(12, 5, &device).unwrap();
            let err = linear.try_forward(randn([2, 11], 0)).unwrap_err();
            assert!(err.to_string().contains("`x`"), "{kind:?}: {err}");
            let table = kind.embedding::<AD>(10, 6, &device).unwrap();
            for bad in [10, -1] {
                let ids = Tensor::<AD, 2, Int>::from_ints([[1, bad]], &device);
                let err = table.try_forward(ids.clone()).unwrap_err().to_string();
                assert!(
                    err.contains("`ids`") && err.contains(&bad.to_string()),
                    "{err}"
                );
                let err = table.try_lookup(ids.reshape([2])).unwrap_err().to_string();
                assert!(err.contains("`ids`"), "{kind:?}: {err}");
            }
            let err = kind.linear::<AD>(0, 5, &device).unwrap_err();
            assert!(err.to_string().contains("d_input"), "{kind:?}: {err}");
            let err = kind.embedding::<AD>(10, 0, &device).unwrap_err();
            assert!(err.to_string().contains("d_model"), "{kind:?}: {err}");
        }
    }

    #[test]
    fn ternary_table_trains_through_its_port() {
        let table = LayerKind::Ternary
            .embedding::<AD>(8, 4, &Default::default())
            .unwrap();
        let target = randn([8, 4], 5);
        train_step(
            table,
            |t| (t.table() - target.clone()).powf_scalar(2.0).mean(),
            &[],
        );
    }

    /// A lookup, a linear map and a squared error to a fixed target.
    #[derive(Module, Debug)]
    struct Tiny<B: Backend> {
        table: ArbEmbedding<B>,
        linear: ArbLinear<B>,
    }

    #[test]
    fn dense_adamw_steps_lower_the_loss() {
        let device = Default::default();
        let mut model = Tiny::<AD> {
            table: LayerKind::Dense.embedding(10, 8, &device).unwrap(),
            linear: LayerKind::Dense.linear(8, 3, &device).unwrap(),
        };
        let ids = random_ids([2, 5], 10, 1);
        let target = randn([2, 5, 3], 2);
        let loss = |m: &Tiny<AD>| {
            (m.linear.forward(m.table.forward(ids.clone())) - target.clone())
                .powf_scalar(2.0)
                .mean()
        };
        let mut optim = AdamWConfig::new().init::<AD, Tiny<AD>>();
        let first: f32 = loss(&model).into_scalar();
        for _ in 0..5 {
            let grads = GradientsParams::from_grads(loss(&model).backward(), &model);
            model = optim.step(0.05, model, grads);
        }
        let last: f32 = loss(&model).into_scalar();
        assert!(last < first, "{first} → {last}");
    }
}
