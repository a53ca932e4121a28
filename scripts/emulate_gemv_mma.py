"""Host emulation of the tensor-core GEMV (burn-ternary/src/ops/matmul/gemv_mma.rs):
the exact mma.sync m16n8k32 fragment layouts, the offset trit decode (2 + t) and the
block-floating-point int8 limbs, against float64 (KERNEL_NOTES "Fifth round").
Run: python3 scripts/emulate_gemv_mma.py  (needs numpy)"""
import numpy as np
rng=np.random.default_rng(0)
def run(m,rows,cols):
    T=rng.integers(-1,2,size=(rows,cols))
    x=rng.standard_normal((m,cols)).astype(np.float32)*np.float32(3)
    words=(cols+15)//16
    W=np.zeros((rows,words),dtype=np.uint64)
    code={1:1,-1:2,0:0}
    for r in range(rows):
        for c in range(cols):
            W[r,c//16]|=code[int(T[r,c])]<<(2*(c%16))
    CH=256; chunks=(cols+CH-1)//CH; tiles=(3*m+7)//8
    y=np.zeros((m,rows))
    for ch in range(chunks):
        base=ch*CH
        blk=x[:,base:base+CH]
        amax=np.float32(np.abs(blk).max())
        e=(np.float32(amax).view(np.uint32)>>23)&255; e=max(int(e),22)
        quant=np.uint32((275-e)<<23).view(np.float32); deq=np.uint32((e-21)<<23).view(np.float32)
        # B limbs: for tile, lane(g,t), reg(q,s,b) byte i
        def limbs_of(r,l,col):
            if col>=cols: return 0
            q=int(np.floor(np.float32(x[r,col])*quant+np.float32(0.5)))
            l0=((q+128)&255)-128; q1=(q-l0)//256; l1=((q1+128)&255)-128; l2=(q1-l1)//256
            return [l0,l1,l2][l]
        for tile in range(tiles):
            # build B matrix per mma step: k32 x n8; A: 16 x 32
            for rt0 in range(0,rows,16):
                C=np.zeros((16,8),dtype=np.int64)
                S=np.zeros(8,dtype=np.int64)
                for q in range(4):
                    for s in range(2):
                        A=np.zeros((16,32),dtype=np.int64); B=np.zeros((32,8),dtype=np.int64)
                        for lane in range(32):
                            g,t=lane//4,lane%4
                            n=tile*8+g
                            for b in range(2):
                                for i in range(4):
                                    col=base+16*(4*q+t)+4*i+2*s+b
                                    k=4*t+i+16*b
                                    if n<3*m:
                                        B[k,g]=limbs_of(n//3,n%3,col)
                            for half,rr in ((0,g),(1,g+8)):
                                row=rt0+rr; w=ch*16+4*q+t
                                word=int(W[row,w]) if (row<rows and w<words) else 0
                                u=((~word)&0xAAAAAAAA)|((word|(word>>1))&0x55555555)
                                for bb,sh in ((0,4*s),(1,4*s+2)):
                                    reg=(u>>sh)&0x03030303
                                    for i in range(4):
                                        A[rr,4*t+i+16*bb]=(reg>>(8*i))&255
                        C+=A@B
                        S+=B.sum(0)
                C-=2*S[None,:]
                for rr in range(16):
                    row=rt0+rr
                    if row>=rows: continue
                    for gcol in range(8):
                        n=tile*8+gcol
                        if n<3*m:
                            y[n//3,row]+=float(C[rr,gcol])*float(deq)*256**(n%3)
    want=x.astype(np.float64)@T.T
    err=np.linalg.norm(y-want)/np.linalg.norm(want)
    print(m,rows,cols,err)
for shp in [(1,5,17),(3,20,300),(8,17,513),(2,33,1000)]:
    run(*shp)
