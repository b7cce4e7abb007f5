// Constant GEMM operands (layer weights) packed once for the engine GEMM's micro-kernel, so a call
// reads the packed panels instead of re-packing the weights every time — for a batch-1 forward or a
// 3-beam decoding step that re-packing was as costly as the arithmetic.
import CKernels
import Dispatch

public final class PackedWeights: @unchecked Sendable {
    let handle: UnsafeMutablePointer<lgap_packed>
    /// Rows and columns of the packed operand as the GEMM sees it.
    public let rows: Int
    public let cols: Int

    /// A conv weight [Cout, Cin, kh, kw] as the GEMM's A operand [Cout, Cin·kh·kw].
    public init(convWeight w: Tensor) {
        let m = w.shape[0], k = w.count / max(w.shape[0], 1)
        handle = w.withData { lgap_pack_a(0, m, k, $0, k) }
        rows = m
        cols = k
    }

    /// A row-major [rows, cols] matrix as the GEMM's A operand.
    init(matrixA a: UnsafePointer<Float>, rows m: Int, cols k: Int) {
        handle = lgap_pack_a(0, m, k, a, k)
        rows = m
        cols = k
    }

    /// An A operand [rows, cols] whose packed panels a producer writes itself (see lgap_packed_a_empty).
    init(emptyA m: Int, cols k: Int) {
        handle = lgap_packed_a_empty(m, k)
        rows = m
        cols = k
    }

    /// A linear weight [out, in] as the GEMM's B operand Wᵀ [in, out].
    public init(linearWeight w: Tensor) {
        let n = w.shape[0], k = w.shape[1]
        handle = w.withData { lgap_pack_b(1, k, n, $0, k) }
        rows = k
        cols = n
    }

    deinit { lgap_packed_free(handle) }

    /// The micro-kernel's (MR, NR): row ranges of a packed A, column ranges of a packed B, must start
    /// at multiples of these.
    public static var tile: (mr: Int, nr: Int) {
        var mr: Int32 = 0, nr: Int32 = 0
        lgap_sgemm_tile(&mr, &nr)
        return (Int(mr), Int(nr))
    }
}

/// A stride-1 convolution's weights laid out for the direct AVX-512 kernels: [cout/8][cin][kh][kw][8]
/// for the position-vector kernel, and for layers of 32 channels or more also [⌈cout/32⌉][cin][kh][kw][32]
/// for the channel-vector kernel that small maps take.
public final class DirectConvWeights: @unchecked Sendable {
    let data: Tensor?
    let data32: Tensor?
    public let cout: Int, cin: Int, kh: Int, kw: Int

    /// nil when the CPU lacks AVX-512 or the layer is too wide for the direct kernel to win: measured
    /// here, it beats the packed GEMM up to 128-channel 3×3 layers (ResNet-56 at batch 64: 0.106 s vs
    /// 0.164 s) and loses from 160 channels on (WideResNet-28-10, ResNet-50). `outputWidth`: lay out
    /// only what a call with that output width uses (a bare conv2d call packs its weights every time);
    /// a layer, which may see any width, gets both.
    public init?(convWeight w: Tensor, stride: Int, outputWidth: Int? = nil) {
        guard stride == 1, w.rank == 4, Self.fits(cout: w.shape[0], cin: w.shape[1], kh: w.shape[2], kw: w.shape[3]) else { return nil }
        (cout, cin, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3])
        let vector = outputWidth.map { Self.takesChannelVector(cout: w.shape[0], outputWidth: $0) }
        data = vector == true ? nil : Self.pack(w, block: 8)
        data32 = w.shape[0] >= 32 && vector != false ? Self.pack(w, block: 32) : nil
    }

    /// Whether a call takes the channel-vector kernel (lgap_direct_conv_cv): layers of 32 channels or
    /// more on maps at most 16 wide, CIFAR's 8×8 and 16×16 stages (measured in `lgap-bench ops`).
    static func takesChannelVector(cout: Int, outputWidth: Int) -> Bool { cout >= 32 && outputWidth <= 16 }

    private static func pack(_ w: Tensor, block: Int) -> Tensor {
        let (co, ci, h, ww) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3])
        let out = Tensor(uninitialized: [(co + block - 1) / block * ci * h * ww * block])
        w.withData { src in out.withFreshData { dst in lgap_direct_conv_pack(src, co, ci, h, ww, block, dst) } }
        return out
    }

    /// The layout a call with this output width runs on, and its channel block (32 or 8).
    func layout(outputWidth wo: Int) -> (weights: Tensor, block: Int) {
        if Self.takesChannelVector(cout: cout, outputWidth: wo), let data32 { return (data32, 32) }
        guard let data else { preconditionFailure("DirectConvWeights laid out for the channel-vector kernel only; output width \(wo)") }
        return (data, 8)
    }
}

extension DirectConvWeights {
    /// Whether the direct kernel runs here (AVX-512) and is worth it for this layer (see init).
    public static func fits(cout: Int, cin: Int, kh: Int, kw: Int) -> Bool {
        lgap_direct_conv_available() != 0 && cin * kh * kw <= 1152 && cout <= 256
    }
}

/// x: [N, Cin, H, W] → [N, Cout, Ho, Wo] with the direct kernel (stride 1, symmetric padding).
public func conv2dDirect(_ x: Tensor, weights dw: DirectConvWeights, bias: Tensor?, padding: (Int, Int)) -> Tensor {
    let (n, cin, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    precondition(cin == dw.cin, "conv2dDirect: input has \(cin) channels, weights expect \(dw.cin)")
    let (ph, pw) = padding
    let ho = h + 2 * ph - dw.kh + 1, wo = w + 2 * pw - dw.kw + 1
    precondition(ho > 0 && wo > 0, "conv2dDirect: kernel larger than padded input")
    let out = Tensor(uninitialized: [n, dw.cout, ho, wo])
    let padSize = lgap_direct_conv_padded_size(cin, h, w, dw.kh, dw.kw, ph, pw)
    let padded = Tensor(uninitialized: [n * padSize])
    let (weights, blockSize) = dw.layout(outputWidth: wo)
    let blocks = (dw.cout + blockSize - 1) / blockSize
    let splits = min(blocks, max(1, Engine.threads / max(n, 1) + (Engine.threads % max(n, 1) == 0 ? 0 : 1)))
    let jobs = n * splits
    x.withData { xp in
        out.withFreshData { op in
            padded.withFreshData { pp in
                weights.withData { wp in
                    withOptionalData(bias) { bp in
                        let (px, po, pad, pwk) = (SendablePointer(xp), SendablePointer(op), SendablePointer(pp), SendablePointer(wp))
                        let pb = bp.map { SendablePointer($0) }
                        parallelRanges(n, grain: 1) { r in
                            for i in r { lgap_direct_conv_pad(px.pointer + i * cin * h * w, cin, h, w, dw.kw, ph, pw, pad.pointer + i * padSize) }
                        }
                        let per = (blocks + splits - 1) / splits
                        let run: @Sendable (Int) -> Void = { job in
                            let img = job / splits, part = job % splits
                            let b0 = part * per, b1 = min(blocks, b0 + per)
                            guard b0 < b1 else { return }
                            let (xi, oi, bi) = (pad.pointer + img * padSize, po.pointer + img * dw.cout * ho * wo, pb.map { UnsafePointer($0.pointer) })
                            if blockSize == 32 {
                                lgap_direct_conv_cv(xi, pwk.pointer, bi, dw.cout, cin, h, w, dw.kh, dw.kw, ph, pw, b0, b1, oi)
                            } else {
                                lgap_direct_conv(xi, pwk.pointer, bi, dw.cout, cin, h, w, dw.kh, dw.kw, ph, pw, b0, b1, oi)
                            }
                        }
                        parallelRanges(jobs, grain: 1) { r in for j in r { run(j) } }
                    }
                }
            }
        }
    }
    return out
}
