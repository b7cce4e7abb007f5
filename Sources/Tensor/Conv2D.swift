// 2-D convolution: which algorithm a layer takes (ConvAlgorithm), im2col + GEMM (a direct GEMM for
// 1×1), and batch-norm folding.
import CKernels
import Dispatch
import Foundation

/// The ways a convolution is computed. The choice depends only on the layer's shape (made once, when
/// its weights are laid out), not the input, so a batch gives bitwise the same result per image as one image at a time.
public enum ConvAlgorithm: String, Sendable {
    /// im2col (packed straight from the image) + GEMM: any shape.
    case gemm
    /// The AVX-512 direct kernel (DirectConvWeights): stride 1, narrow layers.
    case direct
    /// Winograd F(2×2, 3×3) (WinogradWeights): 3×3, stride 1, engine GEMM.
    case winograd

    /// LGAP_CONV=gemm|direct|winograd makes layers take that path wherever it applies (comparisons).
    nonisolated(unsafe) public static var forced: ConvAlgorithm? =
        ProcessInfo.processInfo.environment["LGAP_CONV"].flatMap(ConvAlgorithm.init(rawValue:))

    public static func choose(cout: Int, cin: Int, kernel: (Int, Int), stride: (Int, Int), padding: (Int, Int)) -> ConvAlgorithm {
        guard BLAS.backend == .engine else { return .gemm }
        let winogradOK = kernel == (3, 3) && stride == (1, 1) && padding.0 == padding.1
        let directOK = stride.0 == 1 && stride.1 == 1 && DirectConvWeights.fits(cout: cout, cin: cin, kh: kernel.0, kw: kernel.1)
        switch forced {
        case .gemm?: return .gemm
        case .direct?: return directOK ? .direct : .gemm
        case .winograd?: return winogradOK ? .winograd : .gemm
        case nil: break
        }
        // Measured (lgap-bench ops): Winograd wins from 128 channels up (SD, VAE, WideResNet, ResNet-50
        // deep layers, the pack's UNet) and the direct kernel below (CIFAR ResNets, 64-channel layers).
        if winogradOK && cin > 64 && cout > 64 { return .winograd }
        // A plain 1×1 layer is a GEMM straight on the input (no im2col): with the weights prepacked it
        // beat the direct kernel on every ResNet-50 bottleneck shape (batch 1: 58 → 53 ms in all).
        if isPointwise(kernel: kernel, stride: stride, padding: padding) { return .gemm }
        return directOK ? .direct : .gemm
    }

    /// A plain 1×1 convolution (stride 1, no padding): one GEMM per image straight on the input (no
    /// im2col), on weights prepacked by the layer or packed per call by a bare conv2d.
    public static func isPointwise(kernel: (Int, Int), stride: (Int, Int), padding: (Int, Int)) -> Bool {
        kernel == (1, 1) && stride == (1, 1) && padding == (0, 0)
    }
}

/// Largest im2col buffer (floats) one GEMM call works on; larger outputs are done in row bands so a
/// 384-pixel VAE layer does not need a gigabyte of columns.
let im2colBudget = 4 << 20

/// x: [N, Cin, H, W], weight: [Cout, Cin, kh, kw], bias: [Cout]? → [N, Cout, Ho, Wo]
/// Ho = (H + 2·ph − kh) / sh + 1 (PyTorch's Conv2d, dilation 1, groups 1).
/// `packed`: the weight prepacked with PackedWeights(convWeight:) (engine GEMM only).
public func conv2d(
    _ x: Tensor, weight: Tensor, bias: Tensor? = nil,
    stride: (Int, Int) = (1, 1), padding: (Int, Int) = (0, 0), packed: PackedWeights? = nil
) -> Tensor {
    precondition(x.rank == 4 && weight.rank == 4, "conv2d needs x [N,C,H,W] and weight [Co,Ci,kh,kw]; got \(x.shape), \(weight.shape)")
    let (n, cin, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (cout, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
    precondition(weight.shape[1] == cin, "conv2d: input has \(cin) channels, weight expects \(weight.shape[1])")
    if let bias { precondition(bias.shape == [cout], "conv2d bias \(bias.shape), expected [\(cout)]") }
    let (sh, sw) = stride, (ph, pw) = padding
    precondition(sh > 0 && sw > 0 && ph >= 0 && pw >= 0, "conv2d: bad stride \(stride) or padding \(padding)")
    let ho = (h + 2 * ph - kh) / sh + 1, wo = (w + 2 * pw - kw) / sw + 1
    precondition(ho > 0 && wo > 0, "conv2d: kernel \(kh)×\(kw) larger than padded input \(h)×\(w)")
    if packed == nil {
        // No layer chose for us: take the path a layer with these weights would take.
        switch ConvAlgorithm.choose(cout: cout, cin: cin, kernel: (kh, kw), stride: stride, padding: padding) {
        case .winograd:
            // A one-off call transforms and packs the weights each time (a layer does it once): that
            // costs about what Winograd saves on a few hundred output pixels.
            if n * ho * wo >= 512 { return conv2dWinograd(x, weights: WinogradWeights(convWeight: weight), bias: bias, padding: ph) }
        case .direct:
            if let dw = DirectConvWeights(convWeight: weight, stride: sh, outputWidth: wo) { return conv2dDirect(x, weights: dw, bias: bias, padding: padding) }
        case .gemm:
            break
        }
    }
    let out = Tensor(uninitialized: [n, cout, ho, wo])
    let kdim = cin * kh * kw, plane = ho * wo
    let pointwise = ConvAlgorithm.isPointwise(kernel: (kh, kw), stride: stride, padding: padding)
    if pointwise, let packed, BLAS.backend == .engine {
        pointwisePacked(x, packed: packed, bias: bias, out: out)
        return out
    }
    if BLAS.backend == .engine && !pointwise {
        convPacked(x, weight: weight, bias: bias, out: out, stride: stride, padding: padding, packed: packed)
        return out
    }
    let bandRows = max(1, min(ho, im2colBudget / max(1, kdim * wo)))
    // Batches spread images over the workers (one single-threaded GEMM each); a single image lets the
    // GEMM split itself.
    let workers = n >= 2 ? min(Engine.threads, n) : 1
    let colSize = pointwise ? 0 : kdim * bandRows * wo
    let cols = Tensor(uninitialized: [max(1, workers * colSize)])
    x.withData { xp in
        weight.withData { wp in
            out.withFreshData { op in
                cols.withFreshData { colp in
                    withOptionalData(bias) { bp in
                        let (px, pw_, po, pc) = (SendablePointer(xp), SendablePointer(wp), SendablePointer(op), SendablePointer(colp))
                        let pb = bp.map { SendablePointer($0) }
                        let perImage = (n + workers - 1) / workers
                        let run: @Sendable (Int) -> Void = { worker in
                            let wptr = UnsafePointer(pw_.pointer)
                            for img in (worker * perImage)..<min(n, (worker + 1) * perImage) {
                                let xi = UnsafePointer(px.pointer + img * cin * h * w)
                                let oi = po.pointer + img * cout * plane
                                if pointwise {
                                    BLAS.sgemm(
                                        m: cout, n: plane, k: cin, a: wptr, lda: cin, b: xi, ldb: plane, c: oi, ldc: plane,
                                        parallel: workers == 1)
                                } else {
                                    let cp = pc.pointer + worker * colSize
                                    var row0 = 0
                                    while row0 < ho {
                                        let rows = min(bandRows, ho - row0)
                                        lgap_im2col(xi, cin, h, w, kh, kw, sh, sw, ph, pw, wo, row0, rows, cp)
                                        BLAS.sgemm(
                                            m: cout, n: rows * wo, k: kdim, a: wptr, lda: kdim, b: UnsafePointer(cp), ldb: rows * wo,
                                            c: oi + row0 * wo, ldc: plane, parallel: workers == 1)
                                        row0 += rows
                                    }
                                }
                                if let pb { lgap_add_channel_bias(oi, pb.pointer, cout, plane) }
                            }
                        }
                        if workers == 1 { run(0) } else { DispatchQueue.concurrentPerform(iterations: workers, execute: run) }
                    }
                }
            }
        }
    }
    return out
}

/// The engine GEMM's convolution: each (image, column range) job packs its GEMM operand straight
/// from the image, so no column matrix is written or read back. Jobs spread over the workers: whole
/// images for batches, column ranges (multiples of 32 output pixels) for a single image.
func convPacked(
    _ x: Tensor, weight: Tensor, bias: Tensor?, out: Tensor, stride: (Int, Int), padding: (Int, Int),
    packed: PackedWeights?
) {
    let (n, cin, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (cout, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
    let (ho, wo) = (out.shape[2], out.shape[3])
    let plane = ho * wo
    if n > 1 && plane < 512 {
        convPackedBatched(x, weight: weight, bias: bias, out: out, stride: stride, padding: padding, packed: packed)
        return
    }
    let splits = n >= Engine.threads ? 1 : max(1, min(Engine.threads, (cout * plane * cin * kh * kw) / (1 << 20)))
    let chunk = ((plane + splits - 1) / splits + 31) / 32 * 32
    let jobs = n * splits
    x.withData { xp in
        weight.withData { wp in
            out.withFreshData { op in
                withOptionalData(bias) { bp in
                    let (px, pw, po) = (SendablePointer(xp), SendablePointer(wp), SendablePointer(op))
                    let pb = bp.map { SendablePointer($0) }
                    let run: @Sendable (Int) -> Void = { job in
                        let img = job / splits, part = job % splits
                        let c0 = part * chunk, c1 = min(plane, c0 + chunk)
                        guard c0 < c1 else { return }
                        let oi = po.pointer + img * cout * plane
                        lgap_conv2d_image(
                            pw.pointer, packed?.handle, cout, px.pointer + img * cin * h * w, cin, h, w, kh, kw, stride.0, stride.1,
                            padding.0, padding.1, ho, wo, c0, c1 - c0, oi)
                        if let pb { addChannelBias(oi, pb.pointer, channels: 0..<cout, columns: c0..<c1, plane: plane) }
                    }
                    parallelRanges(jobs, grain: 1) { r in for j in r { run(j) } }
                }
            }
        }
    }
}

/// A 1×1 convolution with prepacked weights: out[img] = W[cout × cin] · x[img][cin × plane], one GEMM
/// per image. A batch smaller than the worker count splits each image instead: by output channel (in
/// multiples of MR) when the weights outweigh the image, so each worker reads only its rows of W
/// (ResNet-50's 7×7 stage: 4 MB of weights for 49 pixels), else by pixel (in multiples of NR), so each
/// worker packs only its columns of the image.
func pointwisePacked(_ x: Tensor, packed: PackedWeights, bias: Tensor?, out: Tensor) {
    let (n, cin) = (x.shape[0], x.shape[1]), plane = x.shape[2] * x.shape[3]
    let cout = packed.rows, (mr, nr) = PackedWeights.tile
    let flops = 2 * cout * cin * plane
    let byRows = plane <= cout
    let splits =
        n >= Engine.threads || flops < (1 << 21)
        ? 1
        : min(Engine.threads, max(1, byRows ? cout / mr : plane / nr))
    let unit = byRows ? mr : nr, extent = byRows ? cout : plane
    let chunk = (extent + splits * unit - 1) / (splits * unit) * unit
    let jobs = n * splits
    x.withData { xp in
        out.withFreshData { op in
            withOptionalData(bias) { bp in
                let (px, po) = (SendablePointer(xp), SendablePointer(op))
                let pb = bp.map { SendablePointer($0) }
                let run: @Sendable (Int) -> Void = { job in
                    let img = job / splits, part = job % splits
                    let e0 = part * chunk, e1 = min(extent, e0 + chunk)
                    guard e0 < e1 else { return }
                    let (r0, r1) = byRows ? (e0, e1) : (0, cout), (c0, c1) = byRows ? (0, plane) : (e0, e1)
                    let xi = px.pointer + img * cin * plane, oi = po.pointer + img * cout * plane
                    lgap_sgemm_packed(
                        packed.handle, 0, nil, 0, nil, 0, xi + c0, plane, r0, r1 - r0, 0, c1 - c0, cin,
                        1, 0, oi + r0 * plane + c0, plane)
                    if let pb { addChannelBias(oi, pb.pointer, channels: r0..<r1, columns: c0..<c1, plane: plane) }
                }
                parallelRanges(jobs, grain: 1) { r in for j in r { run(j) } }
            }
        }
    }
}

/// out[c, i] += bias[c] over a block of one image's [channels, plane] output: the vectorised kernel
/// for whole rows, a plain loop for a column range (a worker's share of a single image).
func addChannelBias(
    _ out: UnsafeMutablePointer<Float>, _ bias: UnsafeMutablePointer<Float>, channels: Range<Int>,
    columns: Range<Int>, plane: Int
) {
    if columns == 0..<plane {
        lgap_add_channel_bias(out + channels.lowerBound * plane, bias + channels.lowerBound, channels.count, plane)
        return
    }
    for c in channels { let b = bias[c]; for i in columns { out[c * plane + i] += b } }
}

/// Small images in a batch: each worker runs one GEMM over its share of the images (columns =
/// image × pixel), then scatters [cout, images·plane] into NCHW and adds the bias.
func convPackedBatched(
    _ x: Tensor, weight: Tensor, bias: Tensor?, out: Tensor, stride: (Int, Int), padding: (Int, Int),
    packed: PackedWeights?
) {
    let (n, cin, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (cout, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
    let (ho, wo) = (out.shape[2], out.shape[3])
    let plane = ho * wo
    let workers = min(Engine.threads, n)
    let per = (n + workers - 1) / workers
    let scratch = Tensor(uninitialized: [workers * cout * per * plane])
    x.withData { xp in
        weight.withData { wp in
            out.withFreshData { op in
                scratch.withFreshData { sp in
                    withOptionalData(bias) { bp in
                        let (px, pw, po, ps) = (SendablePointer(xp), SendablePointer(wp), SendablePointer(op), SendablePointer(sp))
                        let pb = bp.map { SendablePointer($0) }
                        let run: @Sendable (Int) -> Void = { wk in
                            let i0 = wk * per, i1 = min(n, i0 + per)
                            guard i0 < i1 else { return }
                            let count = i1 - i0, cols = count * plane
                            let tmp = ps.pointer + wk * cout * per * plane
                            lgap_conv2d_batch(
                                pw.pointer, packed?.handle, cout, px.pointer + i0 * cin * h * w, cin, h, w, kh, kw, stride.0, stride.1,
                                padding.0, padding.1, ho, wo, count, tmp)
                            // [cout, count·plane] → out[i0 + img, co, :]
                            for img in 0..<count {
                                for co in 0..<cout {
                                    let src = tmp + co * cols + img * plane
                                    let dst = po.pointer + ((i0 + img) * cout + co) * plane
                                    if let pb {
                                        let b = pb.pointer[co]
                                        for i in 0..<plane { dst[i] = src[i] + b }
                                    } else {
                                        dst.update(from: src, count: plane)
                                    }
                                }
                            }
                        }
                        if workers <= 1 { run(0) } else { DispatchQueue.concurrentPerform(iterations: workers, execute: run) }
                    }
                }
            }
        }
    }
}

/// Folds inference batch norm into the convolution before it:
/// w' = w · γ/√(σ²+ε) per output channel, b' = (b − μ) · γ/√(σ²+ε) + β.
/// weight: [Cout, ...], bias: [Cout]?, the four statistics: [Cout] → (w', b').
public func foldBatchNorm(
    weight: Tensor, bias: Tensor?, gamma: Tensor, beta: Tensor,
    runningMean: Tensor, runningVar: Tensor, eps: Float
) -> (weight: Tensor, bias: Tensor) {
    let cout = weight.shape[0]
    for (name, t) in [("gamma", gamma), ("beta", beta), ("running_mean", runningMean), ("running_var", runningVar)] {
        precondition(t.shape == [cout], "batch norm \(name) \(t.shape), expected [\(cout)]")
    }
    let per = weight.count / max(cout, 1)
    var w = weight.copy()
    let b = Tensor(uninitialized: [cout])
    let g = gamma.scalars, be = beta.scalars, mu = runningMean.scalars, v = runningVar.scalars
    let b0 = bias?.scalars ?? [Float](repeating: 0, count: cout)
    w.withMutableData { wp in
        b.withFreshData { bp in
            for c in 0..<cout {
                // Double precision for the scale keeps the folded weights within float rounding of PyTorch's
                // unfolded conv → BN.
                let scale = Double(g[c]) / (Double(v[c]) + Double(eps)).squareRoot()
                for i in 0..<per { wp[c * per + i] = Float(Double(wp[c * per + i]) * scale) }
                bp[c] = Float((Double(b0[c]) - Double(mu[c])) * scale + Double(be[c]))
            }
        }
    }
    return (w, b)
}
