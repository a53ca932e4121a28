#!/usr/bin/env python3
"""Relative L2 error of a ternary product y = x · Tᵀ (64 × 4096 activations,
512 random trit rows) when the f32 activations are split into the parts
that tensor-core routes could multiply: int8 limbs with a shared exponent,
one f16 part, f16 + an fp8-sized (4 significant bits) remainder, or the
split-f16 route. Used in KERNEL_NOTES, "What ≤ 1.25× with f32
activations would take". Needs numpy; runs on the CPU in seconds."""
import numpy as np
rng=np.random.default_rng(0)
m,k,n=64,4096,512
T=rng.integers(-1,2,size=(n,k)).astype(np.float64)
def rel(q,x): 
    y=x@T.T; return np.linalg.norm(q@T.T-y)/np.linalg.norm(y)
def round_sig(v,bits):
    e=np.floor(np.log2(np.abs(v)+1e-300)); sc=2.0**(bits-1-e); return np.round(v*sc)/sc
for dist in ["uniform(-1,1)","normal"]:
    x = rng.uniform(-1,1,(m,k)) if dist.startswith("uniform") else rng.standard_normal((m,k))
    ax=np.abs(x)
    for bits,label in [(16,"2 int8 limbs (16 bits), one exponent per row"),(24,"3 int8 limbs (24 bits), one exponent per row")]:
        E=np.ceil(np.log2(ax.max(1,keepdims=True)))
        s=2.0**(bits-2-E); q=np.round(x*s)/s
        print(f"{dist:14} {label:55} {rel(q,x):.2e}")
    xb=x.reshape(m,k//32,32)
    E=np.ceil(np.log2(np.abs(xb).max(2,keepdims=True)))
    s=2.0**(14-E); q=(np.round(xb*s)/s).reshape(m,k)
    print(f"{dist:14} {'2 int8 limbs, one exponent per 32 columns':55} {rel(q,x):.2e}")
    h=x.astype(np.float16).astype(np.float64)
    print(f"{dist:14} {'one f16 product':55} {rel(h,x):.2e}")
    print(f"{dist:14} {'f16 hi + lo with 4 significant bits (e4m3)':55} {rel(h+round_sig(x-h,4),x):.2e}")
    print(f"{dist:14} {'f16 hi + f16 lo (the split route)':55} {rel(h+(x-h).astype(np.float16).astype(np.float64),x):.2e}")
