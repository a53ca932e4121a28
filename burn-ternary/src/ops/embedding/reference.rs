//! Reference gather: select the packed rows first, then unpack only those.

use burn::tensor::{
    backend::Backend,
    ops::{FloatTensor, IntTensor},
    IndexingUpdateOp, Tensor,
};

use crate::{
    ops::{float, int, prim},
    packing::unpack_trits_tensor,
    types::TernaryPrimitive,
};

/// Rows `ids: [n]` of the table, `[n, cols]`.
pub fn forward<B: Backend>(ids: IntTensor<B>, weight: &TernaryPrimitive<B>) -> FloatTensor<B> {
    let ids = int::<B, 1>(ids);
    let rows = int::<B, 2>(weight.trits.clone()).select(0, ids.clone());
    let scale = float::<B, 1>(weight.scale.clone()).select(0, ids);
    let n = scale.dims()[0];
    prim(unpack_trits_tensor(rows, weight.cols).float() * scale.reshape([n, 1]))
}

/// Scatter-add of `grad: [n, cols]` into a `[rows, cols]` table gradient.
pub fn weight_grad<B: Backend>(
    ids: IntTensor<B>,
    grad: FloatTensor<B>,
    rows: usize,
) -> FloatTensor<B> {
    let grad = float::<B, 2>(grad);
    let cols = grad.dims()[1];
    let zeros = Tensor::<B, 2>::zeros([rows, cols], &grad.device());
    prim(zeros.select_assign(0, int::<B, 1>(ids), grad, IndexingUpdateOp::Add))
}
