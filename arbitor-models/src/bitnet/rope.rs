//! Rotary position embeddings in the rotate-half convention of transformers'
//! Llama (and BitNet): the first and second halves of a head form the pairs.

use burn::tensor::{backend::Backend, Tensor, TensorData};
use burn_ternary::{functional::rotary_embedding, TernaryBackend};

/// Cosine and sine tables `[positions, head_dim]` of the rotary embedding,
/// computed once (for a cache: for all its positions) and sliced per call.
///
/// Angles follow transformers in f32: `inv_freq[i] = 1 / θ^(2i / head_dim)`,
/// `angle = position · inv_freq[i]`, both halves of a head sharing them.
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use arbitor_models::bitnet::RotaryTables;
///
/// let device = Default::default();
/// let rope = RotaryTables::<Flex>::new(4, 10000.0, 3, &device);
/// let x = Tensor::<Flex, 4>::ones([1, 3, 1, 4], &device);
/// // Position 0 is not rotated.
/// let y: Vec<f32> = rope.apply(x, 0).narrow(1, 0, 1).into_data().to_vec().unwrap();
/// assert_eq!(y, vec![1.0; 4]);
/// ```
#[derive(Debug, Clone)]
pub struct RotaryTables<B: Backend> {
    cos: Tensor<B, 2>,
    sin: Tensor<B, 2>,
}

impl<B: Backend> RotaryTables<B> {
    /// Tables for positions `0..positions` of heads `head_dim` wide (even).
    pub fn new(head_dim: usize, theta: f64, positions: usize, device: &B::Device) -> Self {
        let half = head_dim / 2;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| 1.0 / (theta as f32).powf((2 * i) as f32 / head_dim as f32))
            .collect();
        let mut cos = Vec::with_capacity(positions * head_dim);
        let mut sin = Vec::with_capacity(positions * head_dim);
        for p in 0..positions {
            for j in 0..head_dim {
                let angle = (p as f32 * inv_freq[j % half]) as f64;
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        let table =
            |v: Vec<f32>| Tensor::from_data(TensorData::new(v, [positions, head_dim]), device);
        Self {
            cos: table(cos),
            sin: table(sin),
        }
    }

    /// Positions the tables cover.
    pub fn positions(&self) -> usize {
        self.cos.dims()[0]
    }
}

impl<B: TernaryBackend> RotaryTables<B> {
    /// Rotates the token-major `x: [batch, n, heads, head_dim]` holding
    /// positions `start..start + n`: `x · cos + rotate_half(x) · sin` with
    /// `rotate_half([a, b]) = [−b, a]`
    /// ([`rotary_embedding`], one kernel on CUDA and WGPU).
    ///
    /// # Panics
    /// If `start + n` exceeds [`positions`](Self::positions) (callers check it).
    pub fn apply(&self, x: Tensor<B, 4>, start: usize) -> Tensor<B, 4> {
        rotary_embedding(x, self.cos.clone(), self.sin.clone(), start)
    }
}
