use burn::{
    config::Config,
    module::Module,
    tensor::{backend::Backend, Int, Tensor, TensorPrimitive},
};

use crate::{
    backend::TernaryBackend,
    error::{or_panic, TernaryError, TernaryResult},
    nn::{linear::positive, TernaryWeight},
};

/// Configuration of a [`TernaryEmbeddingTable`].
#[derive(Config, Debug)]
pub struct TernaryEmbeddingTableConfig {
    /// Number of rows (vocabulary size).
    pub n_embedding: usize,
    /// Width of each row.
    pub d_model: usize,
}

impl TernaryEmbeddingTableConfig {
    /// Builds the table, or says which config value is invalid.
    pub fn try_init<B: Backend>(
        &self,
        device: &B::Device,
    ) -> TernaryResult<TernaryEmbeddingTable<B>> {
        positive("n_embedding", self.n_embedding)?;
        positive("d_model", self.d_model)?;
        Ok(TernaryEmbeddingTable {
            weight: TernaryWeight::init(self.n_embedding, self.d_model, device),
        })
    }

    /// Builds the table.
    ///
    /// # Panics
    /// If a dimension is zero (the message names it).
    pub fn init<B: Backend>(&self, device: &B::Device) -> TernaryEmbeddingTable<B> {
        or_panic(self.try_init(device))
    }
}

/// A ternary embedding table: row `i` is `s_i · T_i`. The lookup reads only
/// the packed trits of the requested rows.
///
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::{Int, Tensor};
/// use burn_ternary::nn::TernaryEmbeddingTableConfig;
///
/// let device = Default::default();
/// let table = TernaryEmbeddingTableConfig::new(256, 32).init::<NdArray>(&device);
/// let ids = Tensor::<NdArray, 2, Int>::from_ints([[1, 2, 3], [4, 5, 255]], &device);
/// assert_eq!(table.forward(ids).dims(), [2, 3, 32]);
/// ```
#[derive(Module, Debug)]
pub struct TernaryEmbeddingTable<B: Backend> {
    /// The ternary table, logical `[n_embedding, d_model]`.
    pub weight: TernaryWeight<B>,
}

impl<B: TernaryBackend> TernaryEmbeddingTable<B> {
    /// Looks up `ids: [n]`, giving `[n, d_model]`, or reports an id out of range.
    pub fn try_lookup(&self, ids: Tensor<B, 1, Int>) -> TernaryResult<Tensor<B, 2>> {
        let [rows, _] = self.weight.dims();
        check_ids(&ids, rows, "ids")?;
        let out = B::ternary_embedding(
            ids.into_primitive(),
            self.weight.primitive(),
            self.weight.port(),
        );
        Ok(Tensor::from_primitive(TensorPrimitive::Float(out)))
    }

    /// Looks up `ids: [batch, seq]`, giving `[batch, seq, d_model]`, or reports an id out of range.
    pub fn try_forward(&self, ids: Tensor<B, 2, Int>) -> TernaryResult<Tensor<B, 3>> {
        let [batch, seq] = ids.dims();
        let [_, cols] = self.weight.dims();
        Ok(self
            .try_lookup(ids.reshape([batch * seq]))?
            .reshape([batch, seq, cols]))
    }

    /// Looks up `ids: [batch, seq]`, giving `[batch, seq, d_model]`.
    ///
    /// # Panics
    /// If an id is negative or not below `n_embedding` (the message gives the id).
    pub fn forward(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        or_panic(self.try_forward(ids))
    }
}

/// Checks that every id is in `0..bound` (reads two scalars back from the device).
pub(crate) fn check_ids<B: Backend, const D: usize>(
    ids: &Tensor<B, D, Int>,
    bound: usize,
    name: &str,
) -> TernaryResult<()> {
    if ids.shape().num_elements() == 0 {
        return Ok(());
    }
    let min: i64 = ids.clone().min().into_scalar().elem();
    let max: i64 = ids.clone().max().into_scalar().elem();
    let bad = if min < 0 { min } else { max };
    if min < 0 || max >= bound as i64 {
        return Err(TernaryError::IndexOutOfRange {
            tensor: name.to_string(),
            index: bad,
            bound,
        });
    }
    Ok(())
}

use burn::tensor::ElementConversion;
