//! Safetensors weights keyed by upstream (PyTorch) tensor names, and builders
//! of `burn::nn` modules from them.
//!
//! Every getter checks the name, the shape and the dtype, and the error names
//! the tensor with the expected and the stored shape. F32, F16 and BF16
//! storage is accepted and converted to the backend's float type.

use std::path::Path;

use burn::{
    module::Param,
    nn::{
        conv::{Conv1d, Conv2d, ConvTranspose1d},
        Embedding, GroupNorm, LayerNorm, LayerNormConfig, Linear, PaddingConfig1d, PaddingConfig2d,
    },
    tensor::{backend::Backend, bf16, f16, Tensor, TensorData},
};
use safetensors::{tensor::Metadata, Dtype, SafeTensors};

use super::error::{SidecarError, SidecarResult};

/// A parsed safetensors file held in memory.
///
/// ```
/// use arbitor_models::sidecars::SafetensorsWeights;
/// use burn::backend::Flex;
///
/// // A one-tensor file written with the `safetensors` crate.
/// let data: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]
///     .iter()
///     .flat_map(|v| v.to_le_bytes())
///     .collect();
/// let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![3, 2], &data).unwrap();
/// let bytes = safetensors::serialize([("proj.weight", view)], None).unwrap();
///
/// let weights = SafetensorsWeights::from_bytes(bytes, "example").unwrap();
/// assert!(weights.contains("proj.weight"));
/// let device = Default::default();
/// // PyTorch `nn.Linear(2, 3, bias=False)`: weight [out, in] = [3, 2].
/// let linear = weights.linear::<Flex>("proj", 2, 3, false, &device).unwrap();
/// assert_eq!(linear.weight.dims(), [2, 3]);
/// // A wrong shape names the tensor and both shapes.
/// let err = weights.tensor::<Flex, 2>("proj.weight", [2, 3], &device).unwrap_err();
/// assert!(err.to_string().contains("proj.weight"));
/// ```
#[derive(Debug, Clone)]
pub struct SafetensorsWeights {
    origin: String,
    bytes: Vec<u8>,
    data_start: usize,
    metadata: Metadata,
}

fn dtype_name(dtype: Dtype) -> String {
    format!("{dtype:?}")
}

fn decode(name: &str, dtype: Dtype, raw: &[u8]) -> SidecarResult<Vec<f32>> {
    let pairs = || {
        raw.chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
    };
    match dtype {
        Dtype::F32 => Ok(raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()),
        Dtype::F16 => Ok(pairs().map(|b| f16::from_bits(b).to_f32()).collect()),
        Dtype::BF16 => Ok(pairs().map(|b| bf16::from_bits(b).to_f32()).collect()),
        other => Err(SidecarError::UnsupportedDtype {
            tensor: name.to_string(),
            dtype: dtype_name(other),
        }),
    }
}

impl SafetensorsWeights {
    /// Reads and parses a safetensors file.
    ///
    /// ```
    /// use arbitor_models::sidecars::{SafetensorsWeights, SidecarError};
    ///
    /// let err = SafetensorsWeights::open("/nonexistent/model.safetensors".as_ref()).unwrap_err();
    /// assert!(matches!(err, SidecarError::Io { .. }));
    /// ```
    pub fn open(path: &Path) -> SidecarResult<Self> {
        let bytes = std::fs::read(path).map_err(|e| SidecarError::io(path.display(), e))?;
        Self::from_bytes(bytes, &path.display().to_string())
    }

    /// Parses safetensors bytes; `origin` names them in errors.
    ///
    /// ```
    /// use arbitor_models::sidecars::{SafetensorsWeights, SidecarError};
    ///
    /// let err = SafetensorsWeights::from_bytes(vec![1, 2, 3], "truncated.safetensors").unwrap_err();
    /// assert!(matches!(err, SidecarError::Corrupt { .. }));
    /// assert!(err.to_string().contains("truncated.safetensors"));
    /// ```
    pub fn from_bytes(bytes: Vec<u8>, origin: &str) -> SidecarResult<Self> {
        let (header, metadata) =
            SafeTensors::read_metadata(&bytes).map_err(|e| SidecarError::Corrupt {
                file: origin.to_string(),
                reason: format!("{e:?}"),
            })?;
        Ok(Self {
            origin: origin.to_string(),
            data_start: 8 + header,
            bytes,
            metadata,
        })
    }

    /// The file (or origin) the weights came from.
    ///
    /// ```
    /// # let bytes = safetensors::serialize(Vec::<(&str, safetensors::tensor::TensorView)>::new(), None).unwrap();
    /// let weights = arbitor_models::sidecars::SafetensorsWeights::from_bytes(bytes, "vae").unwrap();
    /// assert_eq!(weights.origin(), "vae");
    /// ```
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Whether a tensor named `name` is stored.
    ///
    /// ```
    /// # let bytes = safetensors::serialize(Vec::<(&str, safetensors::tensor::TensorView)>::new(), None).unwrap();
    /// let weights = arbitor_models::sidecars::SafetensorsWeights::from_bytes(bytes, "empty").unwrap();
    /// assert!(!weights.contains("decoder.layers.0.weight"));
    /// ```
    pub fn contains(&self, name: &str) -> bool {
        self.metadata.info(name).is_some()
    }

    /// All stored tensor names, sorted.
    ///
    /// ```
    /// # let bytes = safetensors::serialize(Vec::<(&str, safetensors::tensor::TensorView)>::new(), None).unwrap();
    /// let weights = arbitor_models::sidecars::SafetensorsWeights::from_bytes(bytes, "empty").unwrap();
    /// assert!(weights.names().is_empty());
    /// ```
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.metadata.tensors().into_keys().collect();
        names.sort();
        names
    }

    /// The stored shape of `name`, if present.
    ///
    /// ```
    /// # let bytes = safetensors::serialize(Vec::<(&str, safetensors::tensor::TensorView)>::new(), None).unwrap();
    /// let weights = arbitor_models::sidecars::SafetensorsWeights::from_bytes(bytes, "empty").unwrap();
    /// assert_eq!(weights.shape("x"), None);
    /// ```
    pub fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.metadata.info(name).map(|info| info.shape.clone())
    }

    /// The stored values of `name` as `f32` with the stored shape, without a shape check.
    ///
    /// ```
    /// use arbitor_models::sidecars::SafetensorsWeights;
    ///
    /// let data: Vec<u8> = [0.5f32, -1.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    /// let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2], &data).unwrap();
    /// let bytes = safetensors::serialize([("b", view)], None).unwrap();
    /// let weights = SafetensorsWeights::from_bytes(bytes, "mem").unwrap();
    /// assert_eq!(weights.read_f32("b").unwrap(), (vec![2], vec![0.5, -1.0]));
    /// ```
    pub fn read_f32(&self, name: &str) -> SidecarResult<(Vec<usize>, Vec<f32>)> {
        let info = self
            .metadata
            .info(name)
            .ok_or_else(|| SidecarError::MissingTensor {
                file: self.origin.clone(),
                tensor: name.to_string(),
            })?;
        let (start, end) = info.data_offsets;
        let raw = self
            .bytes
            .get(self.data_start + start..self.data_start + end)
            .ok_or_else(|| SidecarError::Corrupt {
                file: self.origin.clone(),
                reason: format!("tensor `{name}` lies outside the file"),
            })?;
        Ok((info.shape.clone(), decode(name, info.dtype, raw)?))
    }

    fn checked<const D: usize>(&self, name: &str, expected: [usize; D]) -> SidecarResult<Vec<f32>> {
        if let Some(info) = self.metadata.info(name)
            && info.shape != expected
        {
            return Err(SidecarError::ShapeMismatch {
                tensor: name.to_string(),
                expected: expected.to_vec(),
                actual: info.shape.clone(),
            });
        }
        Ok(self.read_f32(name)?.1)
    }

    /// Loads `name`, checking that it has shape `expected`.
    ///
    /// ```
    /// use arbitor_models::sidecars::{SafetensorsWeights, SidecarError};
    /// use burn::backend::Flex;
    ///
    /// # let bytes = safetensors::serialize(Vec::<(&str, safetensors::tensor::TensorView)>::new(), None).unwrap();
    /// let weights = SafetensorsWeights::from_bytes(bytes, "empty.safetensors").unwrap();
    /// let err = weights.tensor::<Flex, 1>("norm.weight", [8], &Default::default()).unwrap_err();
    /// assert_eq!(err, SidecarError::MissingTensor {
    ///     file: "empty.safetensors".into(),
    ///     tensor: "norm.weight".into(),
    /// });
    /// ```
    pub fn tensor<B: Backend, const D: usize>(
        &self,
        name: &str,
        expected: [usize; D],
        device: &B::Device,
    ) -> SidecarResult<Tensor<B, D>> {
        let values = self.checked(name, expected)?;
        Ok(Tensor::from_data(TensorData::new(values, expected), device))
    }

    fn param<B: Backend, const D: usize>(
        &self,
        name: &str,
        expected: [usize; D],
        device: &B::Device,
    ) -> SidecarResult<Param<Tensor<B, D>>> {
        self.tensor(name, expected, device).map(Param::from_tensor)
    }

    fn bias<B: Backend>(
        &self,
        prefix: &str,
        bias: bool,
        d: usize,
        device: &B::Device,
    ) -> SidecarResult<Option<Param<Tensor<B, 1>>>> {
        bias.then(|| self.param(&format!("{prefix}.bias"), [d], device))
            .transpose()
    }

    /// A `burn::nn::Linear` from PyTorch `nn.Linear` tensors `{prefix}.weight`
    /// (`[d_out, d_in]`, transposed to Burn's `[d_in, d_out]`) and `{prefix}.bias` (`[d_out]`).
    ///
    /// ```
    /// use arbitor_models::sidecars::SafetensorsWeights;
    /// use burn::backend::Flex;
    ///
    /// # let bytes = safetensors::serialize(Vec::<(&str, safetensors::tensor::TensorView)>::new(), None).unwrap();
    /// let weights = SafetensorsWeights::from_bytes(bytes, "empty").unwrap();
    /// let err = weights.linear::<Flex>("head", 4, 2, true, &Default::default()).unwrap_err();
    /// assert!(err.to_string().contains("head.weight"));
    /// ```
    pub fn linear<B: Backend>(
        &self,
        prefix: &str,
        d_in: usize,
        d_out: usize,
        bias: bool,
        device: &B::Device,
    ) -> SidecarResult<Linear<B>> {
        let rows = self.checked(&format!("{prefix}.weight"), [d_out, d_in])?;
        let mut transposed = vec![0.0f32; rows.len()];
        for o in 0..d_out {
            for i in 0..d_in {
                transposed[i * d_out + o] = rows[o * d_in + i];
            }
        }
        let weight = Tensor::from_data(TensorData::new(transposed, [d_in, d_out]), device);
        Ok(Linear {
            weight: Param::from_tensor(weight),
            bias: self.bias(prefix, bias, d_out, device)?,
        })
    }

    /// A `burn::nn::LayerNorm` from `{prefix}.weight` and `{prefix}.bias` (both `[d]`).
    ///
    /// ```
    /// use arbitor_models::sidecars::SafetensorsWeights;
    /// use burn::backend::Flex;
    ///
    /// # let bytes = safetensors::serialize(Vec::<(&str, safetensors::tensor::TensorView)>::new(), None).unwrap();
    /// let weights = SafetensorsWeights::from_bytes(bytes, "empty").unwrap();
    /// assert!(weights.layer_norm::<Flex>("ln", 8, 1e-5, &Default::default()).is_err());
    /// ```
    pub fn layer_norm<B: Backend>(
        &self,
        prefix: &str,
        d: usize,
        eps: f64,
        device: &B::Device,
    ) -> SidecarResult<LayerNorm<B>> {
        let gamma = self.param(&format!("{prefix}.weight"), [d], device)?;
        let beta = self.param(&format!("{prefix}.bias"), [d], device)?;
        let mut norm = LayerNormConfig::new(d).with_epsilon(eps).init(device);
        norm.gamma = gamma;
        norm.beta = Some(beta);
        Ok(norm)
    }

    /// A `burn::nn::GroupNorm` (affine) from `{prefix}.weight` and `{prefix}.bias` (both `[channels]`).
    ///
    /// ```
    /// use arbitor_models::sidecars::SafetensorsWeights;
    /// use burn::backend::Flex;
    ///
    /// # let bytes = safetensors::serialize(Vec::<(&str, safetensors::tensor::TensorView)>::new(), None).unwrap();
    /// let weights = SafetensorsWeights::from_bytes(bytes, "empty").unwrap();
    /// assert!(weights.group_norm::<Flex>("gn", 2, 8, 1e-5, &Default::default()).is_err());
    /// ```
    pub fn group_norm<B: Backend>(
        &self,
        prefix: &str,
        groups: usize,
        channels: usize,
        eps: f64,
        device: &B::Device,
    ) -> SidecarResult<GroupNorm<B>> {
        if groups == 0 || !channels.is_multiple_of(groups) {
            return Err(SidecarError::config(
                &self.origin,
                format!("{prefix}.num_groups"),
                format!("{groups} groups do not divide {channels} channels"),
            ));
        }
        Ok(GroupNorm {
            gamma: Some(self.param(&format!("{prefix}.weight"), [channels], device)?),
            beta: Some(self.param(&format!("{prefix}.bias"), [channels], device)?),
            num_groups: groups,
            num_channels: channels,
            epsilon: eps,
            affine: true,
        })
    }

    /// A `burn::nn::Embedding` from `{prefix}.weight` (`[n, d]`, the same layout in both).
    ///
    /// ```
    /// use arbitor_models::sidecars::SafetensorsWeights;
    /// use burn::backend::Flex;
    ///
    /// # let bytes = safetensors::serialize(Vec::<(&str, safetensors::tensor::TensorView)>::new(), None).unwrap();
    /// let weights = SafetensorsWeights::from_bytes(bytes, "empty").unwrap();
    /// assert!(weights.embedding::<Flex>("tok", 10, 4, &Default::default()).is_err());
    /// ```
    pub fn embedding<B: Backend>(
        &self,
        prefix: &str,
        n: usize,
        d: usize,
        device: &B::Device,
    ) -> SidecarResult<Embedding<B>> {
        Ok(Embedding {
            weight: self.param(&format!("{prefix}.weight"), [n, d], device)?,
        })
    }

    /// A `burn::nn::conv::Conv2d` (no groups, no dilation) from PyTorch `nn.Conv2d`
    /// tensors `{prefix}.weight` (`[out, in, kh, kw]`, the same layout in Burn)
    /// and `{prefix}.bias` (`[out]`). `padding` is symmetric `[ph, pw]`.
    ///
    /// ```
    /// use arbitor_models::sidecars::SafetensorsWeights;
    /// use burn::backend::Flex;
    ///
    /// # let bytes = safetensors::serialize(Vec::<(&str, safetensors::tensor::TensorView)>::new(), None).unwrap();
    /// let weights = SafetensorsWeights::from_bytes(bytes, "empty").unwrap();
    /// let err = weights
    ///     .conv2d::<Flex>("conv", 3, 8, [3, 3], [1, 1], [1, 1], true, &Default::default())
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("conv.weight"));
    /// ```
    #[allow(clippy::too_many_arguments)]
    pub fn conv2d<B: Backend>(
        &self,
        prefix: &str,
        channels_in: usize,
        channels_out: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        bias: bool,
        device: &B::Device,
    ) -> SidecarResult<Conv2d<B>> {
        Ok(Conv2d {
            weight: self.param(
                &format!("{prefix}.weight"),
                [channels_out, channels_in, kernel[0], kernel[1]],
                device,
            )?,
            bias: self.bias(prefix, bias, channels_out, device)?,
            stride,
            kernel_size: kernel,
            dilation: [1, 1],
            groups: 1,
            padding: PaddingConfig2d::Explicit(padding[0], padding[1], padding[0], padding[1]),
        })
    }

    /// A `burn::nn::conv::Conv1d` (no groups, no dilation) from PyTorch `nn.Conv1d`
    /// tensors `{prefix}.weight` (`[out, in, k]`) and `{prefix}.bias` (`[out]`).
    ///
    /// ```
    /// use arbitor_models::sidecars::SafetensorsWeights;
    /// use burn::backend::Flex;
    ///
    /// # let bytes = safetensors::serialize(Vec::<(&str, safetensors::tensor::TensorView)>::new(), None).unwrap();
    /// let weights = SafetensorsWeights::from_bytes(bytes, "empty").unwrap();
    /// assert!(weights.conv1d::<Flex>("c", 1, 4, 3, 1, 1, false, &Default::default()).is_err());
    /// ```
    #[allow(clippy::too_many_arguments)]
    pub fn conv1d<B: Backend>(
        &self,
        prefix: &str,
        channels_in: usize,
        channels_out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        bias: bool,
        device: &B::Device,
    ) -> SidecarResult<Conv1d<B>> {
        Ok(Conv1d {
            weight: self.param(
                &format!("{prefix}.weight"),
                [channels_out, channels_in, kernel],
                device,
            )?,
            bias: self.bias(prefix, bias, channels_out, device)?,
            stride,
            kernel_size: kernel,
            dilation: 1,
            groups: 1,
            padding: PaddingConfig1d::Explicit(padding, padding),
        })
    }

    /// A `burn::nn::conv::ConvTranspose1d` (no groups, no dilation) from PyTorch
    /// `nn.ConvTranspose1d` tensors `{prefix}.weight` (`[in, out, k]`, the same
    /// layout in Burn) and `{prefix}.bias` (`[out]`).
    ///
    /// ```
    /// use arbitor_models::sidecars::SafetensorsWeights;
    /// use burn::backend::Flex;
    ///
    /// # let bytes = safetensors::serialize(Vec::<(&str, safetensors::tensor::TensorView)>::new(), None).unwrap();
    /// let weights = SafetensorsWeights::from_bytes(bytes, "empty").unwrap();
    /// assert!(weights
    ///     .conv_transpose1d::<Flex>("up", 8, 4, 4, 2, 1, 0, true, &Default::default())
    ///     .is_err());
    /// ```
    #[allow(clippy::too_many_arguments)]
    pub fn conv_transpose1d<B: Backend>(
        &self,
        prefix: &str,
        channels_in: usize,
        channels_out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        padding_out: usize,
        bias: bool,
        device: &B::Device,
    ) -> SidecarResult<ConvTranspose1d<B>> {
        Ok(ConvTranspose1d {
            weight: self.param(
                &format!("{prefix}.weight"),
                [channels_in, channels_out, kernel],
                device,
            )?,
            bias: self.bias(prefix, bias, channels_out, device)?,
            stride,
            kernel_size: kernel,
            dilation: 1,
            groups: 1,
            padding,
            padding_out,
            channels: [channels_in, channels_out],
        })
    }
}
