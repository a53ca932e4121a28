//! Frozen vision encoders ported from transformers, loading the upstream
//! safetensors names: [`Dinov2Encoder`](dinov2::Dinov2Encoder)
//! (`Dinov2Model`) and [`VitEncoder`](vit::VitEncoder) (`ViTModel`).
//!
//! Both are pre-norm ViTs over `[batch, channels, height, width]` pixels
//! (already normalized as the upstream image processor does): a
//! patch-embedding convolution, a CLS token, learned position embeddings,
//! layers of attention and feed-forward, a final layer norm. They share the
//! pieces of this module: [`PatchEmbeddings`], [`VisionEmbeddings`] (with the
//! bicubic position interpolation of upstream `interpolate_pos_encoding`) and
//! [`VisionAttention`].
//!
//! Images of any size of at least one patch are accepted; the trailing
//! rows/columns that do not fill a patch are dropped (stride-`patch`
//! convolution), as upstream does. When the patch grid differs from the
//! pretrained one, the position embeddings are resampled with PyTorch's
//! `bicubic` / `align_corners=False` interpolation (upstream DINOv2 always
//! does this; upstream ViT does it with `interpolate_pos_encoding=True` and
//! raises otherwise).

pub mod dinov2;
pub mod vit;

use burn::{
    module::{Module, Param},
    nn::{conv::Conv2d, LayerNorm, Linear},
    tensor::{backend::Backend, Tensor},
};

use super::{
    error::SidecarResult,
    hf::{attention, bicubic_resize, find_prefix, merge_heads, split_heads, HfConfig},
    weights::SafetensorsWeights,
};

/// The output of a vision encoder.
///
/// ```
/// use arbitor_models::sidecars::{vision::dinov2::Dinov2Encoder, SidecarStorage};
/// use burn::{backend::Flex, tensor::Tensor};
///
/// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sidecars/dinov2_a");
/// let encoder = Dinov2Encoder::<Flex>::load(dir, SidecarStorage::F32, &Default::default()).unwrap();
/// let out = encoder.forward(Tensor::zeros([1, 3, 28, 28], &Default::default()));
/// assert_eq!(out.last_hidden_state.dims(), [1, 17, 32]);
/// assert_eq!(out.pooler_output.unwrap().dims(), [1, 32]);
/// ```
#[derive(Debug, Clone)]
pub struct VisionOutput<B: Backend> {
    /// `last_hidden_state`: `[batch, 1 + patches, hidden]` (CLS first).
    pub last_hidden_state: Tensor<B, 3>,
    /// `pooler_output` `[batch, pooled]`, where the upstream model has one
    /// (DINOv2: the normed CLS token; ViT: `tanh(dense(CLS))` when the
    /// checkpoint has a pooler).
    pub pooler_output: Option<Tensor<B, 2>>,
}

/// Upstream `*PatchEmbeddings`: a `patch × patch` convolution of stride
/// `patch`, flattened to `[batch, patches, hidden]` in row-major grid order.
///
/// ```
/// # use arbitor_models::sidecars::{vision::vit::VitEncoder, SidecarStorage};
/// # use burn::backend::Flex;
/// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sidecars/vit_a");
/// let vit = VitEncoder::<Flex>::load(dir, SidecarStorage::F32, &Default::default()).unwrap();
/// assert_eq!(vit.embeddings.patch_embeddings.patch_size, [4, 4]);
/// ```
#[derive(Module, Debug)]
pub struct PatchEmbeddings<B: Backend> {
    /// `projection`: Conv2d(channels → hidden, kernel = stride = patch).
    pub projection: Conv2d<B>,
    /// `[patch_height, patch_width]`.
    pub patch_size: [usize; 2],
    /// Input channels.
    pub num_channels: usize,
}

impl<B: Backend> PatchEmbeddings<B> {
    /// Loads `{prefix}.projection.{weight,bias}`.
    fn load(
        weights: &SafetensorsWeights,
        prefix: &str,
        num_channels: usize,
        hidden: usize,
        patch_size: [usize; 2],
        device: &B::Device,
    ) -> SidecarResult<Self> {
        Ok(Self {
            projection: weights.conv2d(
                &format!("{prefix}.projection"),
                num_channels,
                hidden,
                patch_size,
                patch_size,
                [0, 0],
                true,
                device,
            )?,
            patch_size,
            num_channels,
        })
    }

    /// The patch grid `[rows, cols]` of an image of `height × width` pixels.
    ///
    /// ```
    /// # use arbitor_models::sidecars::{vision::vit::VitEncoder, SidecarStorage};
    /// # use burn::backend::Flex;
    /// # let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sidecars/vit_a");
    /// # let vit = VitEncoder::<Flex>::load(dir, SidecarStorage::F32, &Default::default()).unwrap();
    /// assert_eq!(vit.embeddings.patch_embeddings.grid(21, 29), [5, 7]);
    /// ```
    pub fn grid(&self, height: usize, width: usize) -> [usize; 2] {
        [height / self.patch_size[0], width / self.patch_size[1]]
    }

    /// `[batch, channels, h, w]` to `[batch, patches, hidden]`.
    fn forward(&self, pixels: Tensor<B, 4>) -> Tensor<B, 3> {
        let x = self.projection.forward(pixels);
        let [batch, hidden, rows, cols] = x.dims();
        x.reshape([batch, hidden, rows * cols]).swap_dims(1, 2)
    }
}

/// CLS token, patch embeddings and position embeddings (upstream
/// `Dinov2Embeddings` / `ViTEmbeddings`; the mask token of masked-image
/// pretraining is not loaded).
///
/// The CLS token and the position table are stored flattened (rank 1), so
/// that the int8 storage of [`freeze_and_quantize`](super::freeze_and_quantize),
/// which quantizes the parameters of rank ≥ 2 (matmul and convolution
/// kernels), keeps them in `f32` like the biases and norm gains.
///
/// ```
/// # use arbitor_models::sidecars::{vision::dinov2::Dinov2Encoder, SidecarStorage};
/// # use burn::backend::Flex;
/// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sidecars/dinov2_a");
/// let dino = Dinov2Encoder::<Flex>::load(dir, SidecarStorage::Int8, &Default::default()).unwrap();
/// // 28 / 7 = 4: a 4 × 4 pretrained grid, 17 positions of width 32.
/// assert_eq!(dino.embeddings.position_grid, Some([4, 4]));
/// assert_eq!(dino.embeddings.position_embeddings.dims(), [17 * 32]);
/// ```
#[derive(Module, Debug)]
pub struct VisionEmbeddings<B: Backend> {
    /// `cls_token` `[1, 1, hidden]`, flattened to `[hidden]`.
    pub cls_token: Param<Tensor<B, 1>>,
    /// `position_embeddings` `[1, 1 + positions, hidden]`, flattened.
    pub position_embeddings: Param<Tensor<B, 1>>,
    /// `patch_embeddings`.
    pub patch_embeddings: PatchEmbeddings<B>,
    /// Number of patch positions of the table (without CLS).
    pub num_positions: usize,
    /// The square grid `[s, s]` of the table (`s² = num_positions`), used for
    /// interpolation; `None` when `num_positions` is not a square (then only
    /// images whose grid has exactly `num_positions` patches and equal height
    /// and width are accepted, as upstream).
    pub position_grid: Option<[usize; 2]>,
    /// The config's `image_size` `[height, width]`: images of this size use
    /// the stored table as it is.
    pub image_size: [usize; 2],
    /// Model width.
    pub hidden: usize,
}

impl<B: Backend> VisionEmbeddings<B> {
    /// Loads `{prefix}.cls_token`, `{prefix}.position_embeddings` and the
    /// patch embeddings; the number of positions comes from the config's
    /// `image_size / patch_size`.
    #[allow(clippy::too_many_arguments)]
    fn load(
        weights: &SafetensorsWeights,
        prefix: &str,
        num_channels: usize,
        hidden: usize,
        image_size: [usize; 2],
        patch_size: [usize; 2],
        device: &B::Device,
    ) -> SidecarResult<Self> {
        let num_positions = (image_size[0] / patch_size[0]) * (image_size[1] / patch_size[1]);
        let cls = weights.tensor::<B, 3>(&format!("{prefix}.cls_token"), [1, 1, hidden], device)?;
        let pos = weights.tensor::<B, 3>(
            &format!("{prefix}.position_embeddings"),
            [1, num_positions + 1, hidden],
            device,
        )?;
        let side = (num_positions as f64).sqrt().round() as usize;
        Ok(Self {
            cls_token: Param::from_tensor(cls.reshape([hidden])),
            position_embeddings: Param::from_tensor(pos.reshape([(num_positions + 1) * hidden])),
            patch_embeddings: PatchEmbeddings::load(
                weights,
                &format!("{prefix}.patch_embeddings"),
                num_channels,
                hidden,
                patch_size,
                device,
            )?,
            num_positions,
            position_grid: (side * side == num_positions).then_some([side, side]),
            image_size,
            hidden,
        })
    }

    /// The position table for an image of `height × width` pixels,
    /// `[1 + rows · cols, hidden]`: the stored table when the image has the
    /// config's `image_size`, or when its grid has as many patches as the
    /// table and it is square (upstream's test), else the patch
    /// positions resampled bicubically to the grid (upstream
    /// `interpolate_pos_encoding`).
    ///
    /// # Panics
    ///
    /// If interpolation is needed and the stored table is not a square grid.
    ///
    /// ```
    /// # use arbitor_models::sidecars::{vision::dinov2::Dinov2Encoder, SidecarStorage};
    /// # use burn::backend::Flex;
    /// # let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sidecars/dinov2_a");
    /// # let dino = Dinov2Encoder::<Flex>::load(dir, SidecarStorage::F32, &Default::default()).unwrap();
    /// // A 37 × 23 image: a 5 × 3 grid.
    /// assert_eq!(dino.embeddings.positions(37, 23).dims(), [16, 32]);
    /// ```
    pub fn positions(&self, height: usize, width: usize) -> Tensor<B, 2> {
        let d = self.hidden;
        let table = self
            .position_embeddings
            .val()
            .reshape([self.num_positions + 1, d]);
        let [rows, cols] = self.patch_embeddings.grid(height, width);
        if [height, width] == self.image_size
            || (rows * cols == self.num_positions && height == width)
        {
            return table;
        }
        let [s, _] = self.position_grid.unwrap_or_else(|| {
            panic!(
                "position embeddings of {} patches are not a square grid; cannot interpolate them to a {rows} x {cols} grid",
                self.num_positions
            )
        });
        let cls = table.clone().narrow(0, 0, 1);
        let grid = table.narrow(0, 1, self.num_positions).reshape([s, s, d]);
        let resized = bicubic_resize(grid, rows, cols).reshape([rows * cols, d]);
        Tensor::cat(vec![cls, resized], 0)
    }

    /// Pixels `[batch, channels, h, w]` to `[batch, 1 + patches, hidden]`.
    ///
    /// # Panics
    ///
    /// If the channel count differs from the config's `num_channels`, or the
    /// image is smaller than one patch.
    fn forward(&self, pixels: Tensor<B, 4>) -> Tensor<B, 3> {
        let [batch, channels, height, width] = pixels.dims();
        let patch = &self.patch_embeddings;
        assert_eq!(
            channels, patch.num_channels,
            "pixel_values have {channels} channels; the config's num_channels is {}",
            patch.num_channels
        );
        assert!(
            height >= patch.patch_size[0] && width >= patch.patch_size[1],
            "pixel_values of {height} x {width} are smaller than one {:?} patch",
            patch.patch_size
        );
        let patches = patch.forward(pixels);
        let cls = self
            .cls_token
            .val()
            .reshape([1, 1, self.hidden])
            .expand([batch, 1, self.hidden]);
        let x = Tensor::cat(vec![cls, patches], 1);
        x + self.positions(height, width).unsqueeze::<3>()
    }
}

/// Multi-head self-attention with the checkpoint names
/// `{prefix}.attention.{query,key,value}` and `{prefix}.output.dense`
/// (upstream `Dinov2Attention` / `ViTAttention`).
///
/// ```
/// # use arbitor_models::sidecars::{vision::vit::VitEncoder, SidecarStorage};
/// # use burn::backend::Flex;
/// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sidecars/vit_b");
/// let vit = VitEncoder::<Flex>::load(dir, SidecarStorage::F32, &Default::default()).unwrap();
/// assert_eq!(vit.layers[0].attention.num_heads, 6);
/// assert!(vit.layers[0].attention.query.bias.is_none()); // qkv_bias = false
/// ```
#[derive(Module, Debug)]
pub struct VisionAttention<B: Backend> {
    /// `attention.query`.
    pub query: Linear<B>,
    /// `attention.key`.
    pub key: Linear<B>,
    /// `attention.value`.
    pub value: Linear<B>,
    /// `output.dense` (always with bias).
    pub output: Linear<B>,
    /// Heads.
    pub num_heads: usize,
    /// Per-head width.
    pub head_dim: usize,
}

impl<B: Backend> VisionAttention<B> {
    /// `x: [batch, tokens, hidden]` to `[batch, tokens, hidden]`.
    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let q = split_heads(self.query.forward(x.clone()), self.num_heads);
        let k = split_heads(self.key.forward(x.clone()), self.num_heads);
        let v = split_heads(self.value.forward(x), self.num_heads);
        let out = attention(q, k, v, (self.head_dim as f64).powf(-0.5));
        self.output.forward(merge_heads(out))
    }
}

/// The tensors of a DINOv2 or ViT checkpoint under `prefix` (`""`,
/// `"dinov2."`, `"vit."`), or of one of its layers
/// (`{prefix}encoder.layer.{i}.`): the two name their shared pieces alike.
struct Tensors<'a, B: Backend> {
    weights: &'a SafetensorsWeights,
    prefix: String,
    hidden: usize,
    layer_norm_eps: f64,
    device: &'a B::Device,
}

impl<'a, B: Backend> Tensors<'a, B> {
    /// The checkpoint under the first of `prefixes` that stores
    /// `embeddings.cls_token`.
    fn find(
        weights: &'a SafetensorsWeights,
        prefixes: &[&str],
        hidden: usize,
        layer_norm_eps: f64,
        device: &'a B::Device,
    ) -> SidecarResult<Self> {
        Ok(Self {
            prefix: find_prefix(weights, prefixes, "embeddings.cls_token")?,
            weights,
            hidden,
            layer_norm_eps,
            device,
        })
    }

    fn name(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn has(&self, key: &str) -> bool {
        self.weights.contains(&self.name(key))
    }

    /// `{key}.{weight,bias}`: a linear layer with bias.
    fn linear(&self, key: &str, d_in: usize, d_out: usize) -> SidecarResult<Linear<B>> {
        self.weights
            .linear(&self.name(key), d_in, d_out, true, self.device)
    }

    /// `{key}.{weight,bias}`: a layer norm over the model width.
    fn layer_norm(&self, key: &str) -> SidecarResult<LayerNorm<B>> {
        let (d, eps) = (self.hidden, self.layer_norm_eps);
        self.weights
            .layer_norm(&self.name(key), d, eps, self.device)
    }

    /// `key` `[hidden]` as a parameter.
    fn vector(&self, key: &str) -> SidecarResult<Param<Tensor<B, 1>>> {
        let t = self
            .weights
            .tensor(&self.name(key), [self.hidden], self.device)?;
        Ok(Param::from_tensor(t))
    }

    /// `embeddings.*` (see [`VisionEmbeddings::load`]).
    fn embeddings(
        &self,
        num_channels: usize,
        image_size: [usize; 2],
        patch_size: [usize; 2],
    ) -> SidecarResult<VisionEmbeddings<B>> {
        let (weights, d, device) = (self.weights, self.hidden, self.device);
        let prefix = self.name("embeddings");
        VisionEmbeddings::load(
            weights,
            &prefix,
            num_channels,
            d,
            image_size,
            patch_size,
            device,
        )
    }

    /// `count` layers `encoder.layer.{i}.*`, each loaded by `layer`.
    fn layers<L>(
        &self,
        count: usize,
        mut layer: impl FnMut(&Self) -> SidecarResult<L>,
    ) -> SidecarResult<Vec<L>> {
        (0..count)
            .map(|i| {
                layer(&Self {
                    prefix: self.name(&format!("encoder.layer.{i}.")),
                    ..*self
                })
            })
            .collect()
    }

    /// A layer's `attention.attention.{query,key,value}` (bias per
    /// `qkv_bias`) and `attention.output.dense`.
    fn attention(
        &self,
        num_heads: usize,
        head_dim: usize,
        qkv_bias: bool,
    ) -> SidecarResult<VisionAttention<B>> {
        let (hidden, inner) = (self.hidden, num_heads * head_dim);
        let proj = |name: &str| {
            let name = self.name(&format!("attention.attention.{name}"));
            self.weights
                .linear(&name, hidden, inner, qkv_bias, self.device)
        };
        Ok(VisionAttention {
            query: proj("query")?,
            key: proj("key")?,
            value: proj("value")?,
            output: self.linear("attention.output.dense", inner, hidden)?,
            num_heads,
            head_dim,
        })
    }
}

/// Checks that `image_size` holds at least one `patch_size` patch.
fn check_image_size(
    image_size: [usize; 2],
    patch_size: [usize; 2],
    config: &HfConfig,
) -> SidecarResult<()> {
    if image_size[0] < patch_size[0] || image_size[1] < patch_size[1] {
        return Err(config.error(
            "image_size",
            format!("image_size {image_size:?} is smaller than patch_size {patch_size:?}"),
        ));
    }
    Ok(())
}
