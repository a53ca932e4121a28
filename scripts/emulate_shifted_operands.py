#!/usr/bin/env python3
"""Round 25's shifted A operands for the tensor-core GEMV, emulated in NumPy.

The kernel (commits ca360de and b7c8fb8, taken out again in 890045a) masked A
register j of a trit word as `u & (0x0303_0303 << 2j)`, so its int8 lanes
held `4^j * u` (u = 2 + t), and took the factor back on the B side: the limbs
of `h = q >> 2j` in three columns, and `r' = (q mod 4^j) * 4^(3 - j)` in a
fourth weighted 1/64. This checks, per 256-column chunk exactly as the kernel
quantizes (one power-of-two exponent, 23 significant bits), that every
operand fits its type (A in u8, B in s8, the int32 sums in f32's 24 bits)
and that the result matches float64 within the kernel's usual error.

Usage: python3 scripts/emulate_shifted_operands.py  (prints the largest
error relative to sum |x|; about 2e-7)
"""
import numpy as np

CHUNK = 256


def chunk_factors(amax):
    e = int((np.float32(amax).view(np.uint32) >> 23) & 255)
    e = max(e, 22)
    quant = np.uint32((275 - e) << 23).view(np.float32)
    dequant = np.uint32((e - 21) << 23).view(np.float32)
    return quant, dequant


def shifted_gemv_row(x, t):
    y = np.float32(0.0)
    for c in range(0, len(x), CHUNK):
        xs = np.zeros(CHUNK, np.float32)
        ts = np.zeros(CHUNK, np.int64)
        seg = x[c:c + CHUNK]
        xs[:len(seg)] = seg
        ts[:len(seg)] = t[c:c + CHUNK]
        quant, dequant = chunk_factors(np.abs(xs).max())
        q = np.floor(xs * quant + np.float32(0.5)).astype(np.int64)
        j = np.arange(CHUNK) % 4  # the trit's field in its byte
        h = q >> (2 * j)
        low = (q & ((1 << (2 * j)) - 1)) << (6 - 2 * j)
        q1 = (h + 128) >> 8
        l2 = (q1 + 128) >> 8
        columns = [h - 256 * q1, q1 - 256 * l2, l2, low]
        weights = [1.0, 256.0, 65536.0, 1.0 / 64]
        a = (4 ** j) * (ts + 2)
        assert a.min() >= 0 and a.max() <= 255, "A must fit u8"
        for b, w in zip(columns, weights):
            assert b.min() >= -128 and b.max() <= 127, "B must fit s8"
            acc = (a * b).sum() - 2 * ((4 ** j) * b).sum()
            assert abs(acc) < 2 ** 24, "the int32 sum must convert to f32 exactly"
            y += np.float32(acc) * np.float32(w) * dequant
    return y


def main():
    rng = np.random.default_rng(1)
    worst = 0.0
    for cols in (1, 17, 255, 256, 300, 4096, 8192):
        for scale in (1e-3, 1.0, 1e4):
            x = (rng.standard_normal(cols) * scale).astype(np.float32)
            t = rng.integers(-1, 2, size=cols)
            want = (x.astype(np.float64) * t).sum()
            got = shifted_gemv_row(x, t)
            worst = max(worst, abs(got - want) / np.abs(x.astype(np.float64)).sum())
    print(f"largest error relative to sum |x|: {worst:.2e}")


if __name__ == "__main__":
    main()
