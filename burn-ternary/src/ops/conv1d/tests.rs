use rand::Rng;

use crate::{
    nn::{
        TernaryConv1d, TernaryConv1dConfig, TernaryConvTranspose1d, TernaryConvTranspose1dConfig,
    },
    ops::test_util::*,
    ops::{float, prim},
    types::Conv1dGeometry,
};

const TOL: f64 = 1e-5;

struct Case {
    batch: usize,
    length: usize,
    out_channels: usize,
    g: Conv1dGeometry,
}

fn cases() -> Vec<Case> {
    let mut r = rng(20);
    (0..24)
        .map(|i| {
            let kernel_size = r.random_range(1..6);
            let dilation = r.random_range(1..3);
            let g = Conv1dGeometry {
                in_channels: r.random_range(1..7),
                kernel_size,
                stride: r.random_range(1..4),
                padding: r.random_range(0..3),
                dilation,
            };
            let reach = dilation * (kernel_size - 1) + 1;
            Case {
                batch: if i == 0 { 1 } else { r.random_range(1..4) },
                length: reach + r.random_range(0..20),
                out_channels: r.random_range(1..9),
                g,
            }
        })
        .collect()
}

/// Input position read by output `t`, tap `k`, if inside the unpadded input.
fn tap(g: &Conv1dGeometry, t: usize, k: usize, length: usize) -> Option<usize> {
    let pos = (t * g.stride + k * g.dilation) as isize - g.padding as isize;
    (pos >= 0 && (pos as usize) < length).then_some(pos as usize)
}

#[test]
fn conv1d_forward_and_gradients_match_dense_f64() {
    let device = Default::default();
    let mut r = rng(21);
    for c in cases() {
        let g = c.g;
        let (cin, cout, ks, len) = (g.in_channels, c.out_channels, g.kernel_size, c.length);
        let out_len = g.output_len(len).unwrap();
        let w = RandomWeight::new(cout, cin * ks, &mut r);
        let dense = w.dense();
        let x = random_vec(c.batch * cin * len, &mut r);
        let upstream = random_vec(c.batch * cout * out_len, &mut r);
        let conv = TernaryConv1d {
            weight: w.module::<AD>(&device),
            kernel_size: ks,
            stride: g.stride,
            padding: g.padding,
            dilation: g.dilation,
        };
        let x_t = tensor::<AD, 3>(&x, [c.batch, cin, len], &device).require_grad();
        let y = conv.forward(x_t.clone());
        assert_eq!(y.dims(), [c.batch, cout, out_len]);
        let grads = (y.clone() * tensor::<AD, 3>(&upstream, [c.batch, cout, out_len], &device))
            .sum()
            .backward();

        let mut expected_y = vec![0.0f64; c.batch * cout * out_len];
        let mut expected_gx = vec![0.0f64; c.batch * cin * len];
        let mut expected_gw = vec![0.0f64; cout * cin * ks];
        for b in 0..c.batch {
            for o in 0..cout {
                for t in 0..out_len {
                    let gy = upstream[(b * cout + o) * out_len + t] as f64;
                    for ci in 0..cin {
                        for k in 0..ks {
                            if let Some(pos) = tap(&g, t, k, len) {
                                let xi = (b * cin + ci) * len + pos;
                                let wi = o * cin * ks + ci * ks + k;
                                expected_y[(b * cout + o) * out_len + t] +=
                                    dense[wi] * x[xi] as f64;
                                expected_gx[xi] += dense[wi] * gy;
                                expected_gw[wi] += gy * x[xi] as f64;
                            }
                        }
                    }
                }
            }
        }
        let what = format!("conv1d {g:?} batch {} length {len} out {cout}", c.batch);
        assert_close(
            &host(y.inner()),
            &expected_y,
            TOL,
            &format!("{what}: forward"),
        );
        assert_close(
            &host(x_t.grad(&grads).unwrap()),
            &expected_gx,
            TOL,
            &format!("{what}: grad_x"),
        );
        assert_close(
            &host(conv.weight.grad_port.grad(&grads).unwrap()),
            &expected_gw,
            TOL,
            &format!("{what}: grad_w"),
        );
    }
}

#[test]
fn conv_transpose1d_forward_and_gradients_match_dense_f64() {
    let device = Default::default();
    let mut r = rng(22);
    for c in cases() {
        // Reuse the geometry: `in_channels` of the case is the transposed conv's output.
        let g = c.g;
        let (cout, cin, ks) = (g.in_channels, c.out_channels, g.kernel_size);
        let len = r.random_range(1..12);
        let padding_out = r.random_range(0..g.stride);
        let w = RandomWeight::new(cin, cout * ks, &mut r);
        let up = TernaryConvTranspose1d {
            weight: w.module::<AD>(&device),
            out_channels: cout,
            kernel_size: ks,
            stride: g.stride,
            padding: g.padding,
            dilation: g.dilation,
            padding_out,
        };
        let Some(out_len) = up.output_len(len) else {
            continue;
        };
        let dense = w.dense();
        let x = random_vec(c.batch * cin * len, &mut r);
        let upstream = random_vec(c.batch * cout * out_len, &mut r);
        let x_t = tensor::<AD, 3>(&x, [c.batch, cin, len], &device).require_grad();
        let y = up.forward(x_t.clone());
        assert_eq!(y.dims(), [c.batch, cout, out_len]);
        let grads = (y.clone() * tensor::<AD, 3>(&upstream, [c.batch, cout, out_len], &device))
            .sum()
            .backward();

        let mut expected_y = vec![0.0f64; c.batch * cout * out_len];
        let mut expected_gx = vec![0.0f64; c.batch * cin * len];
        let mut expected_gw = vec![0.0f64; cin * cout * ks];
        for b in 0..c.batch {
            for ci in 0..cin {
                for t in 0..len {
                    let xi = (b * cin + ci) * len + t;
                    for co in 0..cout {
                        for k in 0..ks {
                            if let Some(pos) = tap(&g, t, k, out_len) {
                                let yi = (b * cout + co) * out_len + pos;
                                let wi = ci * cout * ks + co * ks + k;
                                expected_y[yi] += dense[wi] * x[xi] as f64;
                                expected_gx[xi] += dense[wi] * upstream[yi] as f64;
                                expected_gw[wi] += x[xi] as f64 * upstream[yi] as f64;
                            }
                        }
                    }
                }
            }
        }
        let what = format!(
            "conv_transpose1d {g:?} out_pad {padding_out} batch {} length {len} in {cin}",
            c.batch
        );
        assert_close(
            &host(y.inner()),
            &expected_y,
            TOL,
            &format!("{what}: forward"),
        );
        assert_close(
            &host(x_t.grad(&grads).unwrap()),
            &expected_gx,
            TOL,
            &format!("{what}: grad_x"),
        );
        assert_close(
            &host(up.weight.grad_port.grad(&grads).unwrap()),
            &expected_gw,
            TOL,
            &format!("{what}: grad_w"),
        );
    }
}

#[test]
fn bad_conv_input_and_config_are_named() {
    let device = Default::default();
    let conv = TernaryConv1dConfig::new(3, 4, 5).init::<TB>(&device);
    let err = conv
        .try_forward(tensor::<TB, 3>(&[0.0; 2 * 20], [1, 2, 20], &device))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "tensor `x` has shape [1, 2, 20], expected [batch, 3, length]"
    );
    let err = conv
        .try_forward(tensor::<TB, 3>(&[0.0; 3 * 4], [1, 3, 4], &device))
        .unwrap_err();
    assert!(
        err.to_string().contains("at least the kernel's reach"),
        "{err}"
    );
    let err = TernaryConv1dConfig::new(3, 4, 0)
        .try_init::<TB>(&device)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid config `kernel_size` = 0: must be at least 1"
    );
    let err = TernaryConvTranspose1dConfig::new(3, 4, 3)
        .with_stride(2)
        .with_padding_out(2)
        .try_init::<TB>(&device)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid config `padding_out` = 2: must be smaller than stride"
    );
}

/// `erf` in f64 (the Taylor series, exact to about 1e-10 for |z| ≤ 4; beyond,
/// `1 − erf` is below 2e-8).
fn erf_f64(z: f64) -> f64 {
    if z.abs() > 4.0 {
        return z.signum();
    }
    let (mut term, mut sum) = (z, z);
    for n in 1..200 {
        term *= -z * z / n as f64;
        sum += term / (2 * n + 1) as f64;
    }
    sum * 2.0 / std::f64::consts::PI.sqrt()
}

/// The fused reference (conv, then each epilogue, then the GELU copy)
/// against a dense f64 computation, on the random geometries of [`cases`].
#[test]
fn fused_conv1d_reference_matches_dense_f64() {
    use crate::{ops::conv1d::reference::fused_forward, types::ConvEpilogue};
    let device = Default::default();
    let mut r = rng(23);
    for (i, c) in cases().into_iter().enumerate() {
        let g = c.g;
        let (cin, cout, ks, len) = (g.in_channels, c.out_channels, g.kernel_size, c.length);
        let out_len = g.output_len(len).unwrap();
        let w = RandomWeight::new(cout, cin * ks, &mut r);
        let dense = w.dense();
        let x = random_vec(c.batch * cin * len, &mut r);
        let full = c.batch * cout * out_len;
        let extra = random_vec(full, &mut r);
        // Two steps' contexts; odd cases add the second.
        let context = random_vec(2 * c.batch * cout, &mut r);
        let step = i % 2;
        let alpha: Vec<f32> = (0..c.batch).map(|_| r.random_range(0.05..0.99)).collect();
        let mut want = vec![0.0f64; full];
        for b in 0..c.batch {
            for o in 0..cout {
                for t in 0..out_len {
                    for ci in 0..cin {
                        for k in 0..ks {
                            if let Some(pos) = tap(&g, t, k, len) {
                                want[(b * cout + o) * out_len + t] += dense
                                    [o * cin * ks + ci * ks + k]
                                    * x[(b * cin + ci) * len + pos] as f64;
                            }
                        }
                    }
                }
            }
        }
        let kind = i % 4;
        for (at, y) in want.iter_mut().enumerate() {
            let b = at / (cout * out_len);
            let row = (at / out_len) % cout;
            *y = match kind {
                0 => *y,
                1 => *y + context[(step * c.batch + b) * cout + row] as f64,
                2 => *y + extra[at] as f64,
                _ => {
                    let a = alpha[b] as f64;
                    (extra[at] as f64 - (1.0 - a) * *y) / a.sqrt()
                }
            };
        }
        let shape = [c.batch, cout, out_len];
        let epilogue = match kind {
            0 => ConvEpilogue::Plain,
            1 => ConvEpilogue::AddContext {
                context: prim(tensor::<TB, 3>(&context, [2, c.batch, cout], &device)),
                step,
            },
            2 => ConvEpilogue::AddResidual(prim(tensor::<TB, 3>(&extra, shape, &device))),
            _ => ConvEpilogue::DenoiseStep {
                latent: prim(tensor::<TB, 3>(&extra, shape, &device)),
                alpha: prim(tensor::<TB, 1>(&alpha, [c.batch], &device)),
            },
        };
        let weight = w.module::<TB>(&device).primitive();
        let (y, activated) = fused_forward::<TB>(
            prim(tensor::<TB, 3>(&x, [c.batch, cin, len], &device)),
            &weight,
            g,
            epilogue,
            true,
        );
        let what = format!(
            "fused conv1d {g:?} batch {} out {cout} epilogue {kind}",
            c.batch
        );
        assert_close(&host(float::<TB, 3>(y)), &want, TOL, &what);
        let want_gelu: Vec<f64> = want
            .iter()
            .map(|y| 0.5 * y * (1.0 + erf_f64(y / std::f64::consts::SQRT_2)))
            .collect();
        let activated = activated.expect("gelu_copy asks for the GELU copy");
        assert_close(
            &host(float::<TB, 3>(activated)),
            &want_gelu,
            TOL,
            &format!("{what}: gelu"),
        );
    }
}

#[test]
fn erf_oracle_is_exact_at_known_values() {
    // erf(0.5), erf(1), erf(2) to 12 digits (Abramowitz & Stegun, table 7.1).
    for (z, want) in [
        (0.5, 0.520499877813),
        (1.0, 0.842700792950),
        (2.0, 0.995322265019),
    ] {
        assert!((erf_f64(z) - want).abs() < 1e-11, "erf({z})");
        assert!((erf_f64(-z) + want).abs() < 1e-11, "erf(-{z})");
    }
}
