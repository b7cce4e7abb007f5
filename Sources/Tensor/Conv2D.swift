// 2-D convolution as im2col + GEMM (a direct GEMM for 1×1), and batch-norm folding.
import CKernels
import Dispatch

/// Largest im2col buffer (floats) one GEMM call works on; larger outputs are done in row bands so a
/// 384-pixel VAE layer does not need a gigabyte of columns.
let im2colBudget = 4 << 20

/// x: [N, Cin, H, W], weight: [Cout, Cin, kh, kw], bias: [Cout]? → [N, Cout, Ho, Wo]
/// Ho = (H + 2·ph − kh) / sh + 1 (PyTorch's Conv2d, dilation 1, groups 1).
public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil,
                   stride: (Int, Int) = (1, 1), padding: (Int, Int) = (0, 0)) -> Tensor {
    precondition(x.rank == 4 && weight.rank == 4, "conv2d needs x [N,C,H,W] and weight [Co,Ci,kh,kw]; got \(x.shape), \(weight.shape)")
    let (n, cin, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (cout, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
    precondition(weight.shape[1] == cin, "conv2d: input has \(cin) channels, weight expects \(weight.shape[1])")
    if let bias { precondition(bias.shape == [cout], "conv2d bias \(bias.shape), expected [\(cout)]") }
    let (sh, sw) = stride, (ph, pw) = padding
    precondition(sh > 0 && sw > 0 && ph >= 0 && pw >= 0, "conv2d: bad stride \(stride) or padding \(padding)")
    let ho = (h + 2 * ph - kh) / sh + 1, wo = (w + 2 * pw - kw) / sw + 1
    precondition(ho > 0 && wo > 0, "conv2d: kernel \(kh)×\(kw) larger than padded input \(h)×\(w)")
    let out = Tensor(uninitialized: [n, cout, ho, wo])
    let kdim = cin * kh * kw, plane = ho * wo
    let direct = kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0
    let bandRows = max(1, min(ho, im2colBudget / max(1, kdim * wo)))
    // Batches spread images over the workers (one single-threaded GEMM each); a single image lets the
    // GEMM split itself.
    let workers = n >= 2 ? min(Engine.threads, n) : 1
    let colSize = direct ? 0 : kdim * bandRows * wo
    let cols = Tensor(uninitialized: [max(1, workers * colSize)])
    x.withData { xp in weight.withData { wp in out.withFreshData { op in cols.withFreshData { colp in
        withOptionalData(bias) { bp in
            let (px, pw_, po, pc) = (SendablePointer(xp), SendablePointer(wp), SendablePointer(op), SendablePointer(colp))
            let pb = bp.map { SendablePointer($0) }
            let perImage = (n + workers - 1) / workers
            let run: @Sendable (Int) -> Void = { worker in
                let wptr = UnsafePointer(pw_.pointer)
                for img in (worker * perImage)..<min(n, (worker + 1) * perImage) {
                    let xi = UnsafePointer(px.pointer + img * cin * h * w)
                    let oi = po.pointer + img * cout * plane
                    if direct {
                        BLAS.sgemm(m: cout, n: plane, k: cin, a: wptr, lda: cin, b: xi, ldb: plane, c: oi, ldc: plane,
                                   parallel: workers == 1)
                    } else {
                        let cp = pc.pointer + worker * colSize
                        var row0 = 0
                        while row0 < ho {
                            let rows = min(bandRows, ho - row0)
                            lgap_im2col(xi, cin, h, w, kh, kw, sh, sw, ph, pw, wo, row0, rows, cp)
                            BLAS.sgemm(m: cout, n: rows * wo, k: kdim, a: wptr, lda: kdim, b: UnsafePointer(cp), ldb: rows * wo,
                                       c: oi + row0 * wo, ldc: plane, parallel: workers == 1)
                            row0 += rows
                        }
                    }
                    if let pb { lgap_add_channel_bias(oi, pb.pointer, cout, plane) }
                }
            }
            if workers == 1 { run(0) } else { DispatchQueue.concurrentPerform(iterations: workers, execute: run) }
        }
    } } } }
    return out
}

/// Folds inference batch norm into the convolution before it:
/// w' = w · γ/√(σ²+ε) per output channel, b' = (b − μ) · γ/√(σ²+ε) + β.
/// weight: [Cout, ...], bias: [Cout]?, the four statistics: [Cout] → (w', b').
public func foldBatchNorm(weight: Tensor, bias: Tensor?, gamma: Tensor, beta: Tensor,
                          runningMean: Tensor, runningVar: Tensor, eps: Float) -> (weight: Tensor, bias: Tensor) {
    let cout = weight.shape[0]
    for (name, t) in [("gamma", gamma), ("beta", beta), ("running_mean", runningMean), ("running_var", runningVar)] {
        precondition(t.shape == [cout], "batch norm \(name) \(t.shape), expected [\(cout)]")
    }
    let per = weight.count / max(cout, 1)
    var w = weight.copy()
    let b = Tensor(uninitialized: [cout])
    let g = gamma.scalars, be = beta.scalars, mu = runningMean.scalars, v = runningVar.scalars
    let b0 = bias?.scalars ?? [Float](repeating: 0, count: cout)
    w.withMutableData { wp in b.withFreshData { bp in
        for c in 0..<cout {
            // Double precision for the scale keeps the folded weights within float rounding of PyTorch's
            // unfolded conv → BN.
            let scale = Double(g[c]) / (Double(v[c]) + Double(eps)).squareRoot()
            for i in 0..<per { wp[c * per + i] = Float(Double(wp[c * per + i]) * scale) }
            bp[c] = Float((Double(b0[c]) - Double(mu[c])) * scale + Double(be[c]))
        }
    } }
    return (w, b)
}
