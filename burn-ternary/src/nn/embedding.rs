//! [`TernaryEmbedding`], the ternary counterpart of `burn::nn::Embedding`.

use burn::{
    config::Config,
    module::{Content, DisplaySettings, Module, ModuleDisplay},
    tensor::{backend::Backend, Int, Tensor},
};

use crate::{
    backend::TernaryBackend,
    error::{or_panic, TernaryResult},
    functional,
    nn::linear::positive,
    weight::TernaryWeight,
};

/// Configuration of a [`TernaryEmbedding`] (the counterpart of
/// `burn::nn::EmbeddingConfig`).
///
/// ```
/// use burn::backend::Flex;
/// use burn_ternary::TernaryEmbeddingConfig;
///
/// let table = TernaryEmbeddingConfig::new(256, 32).init::<Flex>(&Default::default());
/// assert_eq!(table.weight.dims(), [256, 32]);
/// ```
#[derive(Config, Debug)]
pub struct TernaryEmbeddingConfig {
    /// Number of rows (vocabulary size).
    pub n_embedding: usize,
    /// Width of each row.
    pub d_model: usize,
}

/// Old name of [`TernaryEmbeddingConfig`].
#[deprecated(note = "renamed to TernaryEmbeddingConfig")]
pub type TernaryEmbeddingTableConfig = TernaryEmbeddingConfig;

impl TernaryEmbeddingConfig {
    /// Builds the table, or says which config value is invalid.
    pub fn try_init<B: Backend>(&self, device: &B::Device) -> TernaryResult<TernaryEmbedding<B>> {
        positive("n_embedding", self.n_embedding)?;
        positive("d_model", self.d_model)?;
        Ok(TernaryEmbedding {
            weight: TernaryWeight::init(self.n_embedding, self.d_model, device),
        })
    }

    /// Builds the table.
    ///
    /// # Panics
    /// If a dimension is zero (the message names it).
    pub fn init<B: Backend>(&self, device: &B::Device) -> TernaryEmbedding<B> {
        or_panic(self.try_init(device))
    }
}

/// A ternary embedding table: row `i` is `s_i · T_i`. The lookup reads only
/// the packed trits of the requested rows ([`functional::embedding`]).
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::{Int, Tensor};
/// use burn_ternary::TernaryEmbeddingConfig;
///
/// let device = Default::default();
/// let table = TernaryEmbeddingConfig::new(256, 32).init::<Flex>(&device);
/// let ids = Tensor::<Flex, 2, Int>::from_ints([[1, 2, 3], [4, 5, 255]], &device);
/// assert_eq!(table.forward(ids).dims(), [2, 3, 32]);
/// println!("{table}"); // TernaryEmbedding {n_embedding: 256, d_model: 32, params: ...}
/// ```
#[derive(Module, Debug)]
#[module(custom_display)]
#[doc(alias = "TernaryEmbeddingTable")]
pub struct TernaryEmbedding<B: Backend> {
    /// The ternary table, logical `[n_embedding, d_model]`.
    pub weight: TernaryWeight<B>,
}

/// Old name of [`TernaryEmbedding`].
#[deprecated(note = "renamed to TernaryEmbedding")]
pub type TernaryEmbeddingTable<B> = TernaryEmbedding<B>;

impl<B: Backend> ModuleDisplay for TernaryEmbedding<B> {
    fn custom_settings(&self) -> Option<DisplaySettings> {
        DisplaySettings::new()
            .with_new_line_after_attribute(false)
            .optional()
    }

    fn custom_content(&self, content: Content) -> Option<Content> {
        let [n_embedding, d_model] = self.weight.dims();
        content
            .add("n_embedding", &n_embedding)
            .add("d_model", &d_model)
            .optional()
    }
}

impl<B: TernaryBackend> TernaryEmbedding<B> {
    /// Looks up `ids: [n]`, giving `[n, d_model]`, or reports an id out of range.
    pub fn try_lookup(&self, ids: Tensor<B, 1, Int>) -> TernaryResult<Tensor<B, 2>> {
        functional::embedding_lookup(&self.weight, ids)
    }

    /// Looks up `ids: [n]` that the caller knows are in range, giving
    /// `[n, d_model]`, without reading anything back from the device (see
    /// [`functional::embedding_lookup_unchecked`]).
    pub fn lookup_unchecked(&self, ids: Tensor<B, 1, Int>) -> Tensor<B, 2> {
        functional::embedding_lookup_unchecked(&self.weight, ids)
    }

    /// Looks up `ids: [batch, seq]`, giving `[batch, seq, d_model]`, or reports an id out of range.
    pub fn try_forward(&self, ids: Tensor<B, 2, Int>) -> TernaryResult<Tensor<B, 3>> {
        functional::embedding(&self.weight, ids)
    }

    /// Looks up `ids: [batch, seq]`, giving `[batch, seq, d_model]`.
    ///
    /// # Panics
    /// If an id is negative or not below `n_embedding` (the message gives the id).
    pub fn forward(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        or_panic(self.try_forward(ids))
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::Flex;

    use super::*;

    #[test]
    fn display_shows_the_shape() {
        let table = TernaryEmbeddingConfig::new(10, 4).init::<Flex>(&Default::default());
        let shown = format!("{table}");
        assert!(
            shown.starts_with("TernaryEmbedding {n_embedding: 10, d_model: 4"),
            "{shown}"
        );
    }
}
