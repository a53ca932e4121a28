//! CubeCL kernel for the causal grouped-query attention on `CubeBackend`
//! (CUDA, WGPU): one cube per (batch, query token, query head). The cube
//! walks the visible positions in chunks of one position per unit with an
//! online softmax (running maximum and sum, the output rescaled per
//! chunk), so the scores stay in shared memory and each key and value row
//! is read once per query row. Head widths up to `2 · UNITS`; wider heads
//! take the reference.

use burn_cubecl::{kernel::into_contiguous, tensor::CubeTensor, CubeRuntime};
use cubecl::prelude::*;

/// Units per cube: positions per chunk, and output dims per pass.
pub(crate) const UNITS: usize = 128;

/// The widest head the kernel takes (two output dims per unit).
pub(crate) const MAX_HEAD_DIM: usize = 2 * UNITS;

/// Scores of masked positions, and the starting maximum: far below any
/// real score, finite (WGSL has no infinity literals).
const FLOOR: f32 = -1.0e30;

// The `two_dims` branches test a comptime flag apart from the runtime
// bound, so the second accumulator is compiled out for narrow heads.
#[allow(clippy::collapsible_if)]
#[cube(launch)]
fn attention_kernel<F: Float>(
    q: &Array<F>,
    keys: &Array<F>,
    values: &Array<F>,
    out: &mut Array<F>,
    rows: u32,
    n: u32,
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    start: u32,
    total: u32,
    key_strides: Sequence<u32>,
    value_strides: Sequence<u32>,
    scale: f32,
    #[comptime] units: usize,
    #[comptime] two_dims: bool,
    #[define(F)] _dtype: StorageType,
) {
    let row = crate::ops::launch::wrapped_cube();
    let unit = UNIT_POS_X as usize;
    if row >= usize::cast_from(rows) {
        terminate!();
    }
    let heads = usize::cast_from(heads);
    let n = usize::cast_from(n);
    let hd = usize::cast_from(head_dim);
    let h = row % heads;
    let t = (row / heads) % n;
    let b = row / (heads * n);
    let g = h / (heads / usize::cast_from(kv_heads));
    let kbase = b * usize::cast_from(key_strides[0]) + g * usize::cast_from(key_strides[1]);
    let ks = usize::cast_from(key_strides[2]);
    let kd = usize::cast_from(key_strides[3]);
    let vbase = b * usize::cast_from(value_strides[0]) + g * usize::cast_from(value_strides[1]);
    let vs = usize::cast_from(value_strides[2]);
    let vd = usize::cast_from(value_strides[3]);
    // Positions 0..limit are visible to this query (causal).
    let mut limit = usize::cast_from(start) + t + 1;
    if limit > usize::cast_from(total) {
        limit = usize::cast_from(total);
    }

    let mut qs = SharedMemory::<F>::new(2 * units);
    let mut d = unit;
    while d < hd {
        qs[d] = q[row * hd + d];
        d += units;
    }
    let mut s = SharedMemory::<F>::new(units);
    sync_cube();

    let d0 = unit;
    let d1 = unit + units;
    let mut m = F::cast_from(FLOOR);
    let mut l = F::new(0.0);
    let mut acc0 = F::new(0.0);
    let mut acc1 = F::new(0.0);
    let mut c0 = 0usize;
    while c0 < limit {
        let p = c0 + unit;
        let mut score = F::cast_from(FLOOR);
        if p < limit {
            let mut dot = F::new(0.0);
            for e in 0..hd {
                dot += qs[e] * keys[kbase + p * ks + e * kd];
            }
            score = dot * F::cast_from(scale);
        }
        s[unit] = score;
        sync_cube();
        let mut chunk_max = F::cast_from(FLOOR);
        for j in 0..units {
            chunk_max = F::max(chunk_max, s[j]);
        }
        let m_new = F::max(m, chunk_max);
        sync_cube();
        let mut w = F::new(0.0);
        if p < limit {
            w = F::exp(score - m_new);
        }
        s[unit] = w;
        sync_cube();
        let correction = F::exp(m - m_new);
        let mut width = limit - c0;
        if width > units {
            width = units;
        }
        let mut chunk_sum = F::new(0.0);
        let mut part0 = F::new(0.0);
        let mut part1 = F::new(0.0);
        for j in 0..width {
            let wj = s[j];
            chunk_sum += wj;
            let at = vbase + (c0 + j) * vs;
            if d0 < hd {
                part0 += wj * values[at + d0 * vd];
            }
            if two_dims {
                if d1 < hd {
                    part1 += wj * values[at + d1 * vd];
                }
            }
        }
        l = l * correction + chunk_sum;
        acc0 = acc0 * correction + part0;
        acc1 = acc1 * correction + part1;
        m = m_new;
        sync_cube();
        c0 += units;
    }
    if d0 < hd {
        out[row * hd + d0] = acc0 / l;
    }
    if two_dims {
        if d1 < hd {
            out[row * hd + d1] = acc1 / l;
        }
    }
}

/// Causal grouped-query attention (see [`super`]); `q` token-major
/// `[batch, n, heads, head_dim]` with `head_dim <= MAX_HEAD_DIM`, `keys` and
/// `values` `[batch, kv_heads, total, head_dim]` in any strides from
/// offset 0 (a view of a longer cache reads in place).
pub fn forward<R: CubeRuntime>(
    q: CubeTensor<R>,
    keys: CubeTensor<R>,
    values: CubeTensor<R>,
    start: usize,
    scale: f64,
) -> CubeTensor<R> {
    let q = into_contiguous(q);
    let [batch, n, heads, head_dim] = q.meta.shape().dims();
    let [_, kv_heads, total, _] = keys.meta.shape().dims();
    let out = crate::ops::launch::empty_on(&q, q.meta.shape().clone(), q.dtype);
    // Strides go as scalars: a `Tensor` argument would send its shape and
    // strides with every launch (on CUDA a host-to-device copy).
    let strides = |t: &CubeTensor<R>| {
        let mut seq = SequenceArg::new();
        for &s in t.meta.strides().iter() {
            seq.push(s as u32);
        }
        seq
    };
    let (key_strides, value_strides) = (strides(&keys), strides(&values));
    let rows = batch * n * heads;
    if rows == 0 || head_dim == 0 {
        return out;
    }
    let dtype = q.dtype;
    attention_kernel::launch::<R>(
        &q.client.clone(),
        crate::ops::launch::wrapped_grid(rows),
        CubeDim::new_1d(UNITS as u32),
        q.into_array_arg(),
        keys.into_array_arg(),
        values.into_array_arg(),
        out.clone().into_array_arg(),
        rows as u32,
        n as u32,
        heads as u32,
        kv_heads as u32,
        head_dim as u32,
        start as u32,
        total as u32,
        key_strides,
        value_strides,
        scale as f32,
        UNITS,
        head_dim > UNITS,
        dtype.into(),
    );
    out
}
