// 3×3 stride-1 convolutions by Winograd F(2×2, 3×3) (CKernels/winograd.c): 16 GEMMs on transformed
// tiles instead of one on im2col columns, 2.25× fewer multiplications. Used for the layers where the
// GEMMs are wide enough to run near peak (ConvAlgorithm decides).
import CKernels
import Dispatch

/// A 3×3 convolution's weights as the 16 transformed matrices U_ξ [cout, cin], each packed for the
/// engine GEMM.
public final class WinogradWeights: @unchecked Sendable {
    let matrices: [PackedWeights]
    let handles: [UnsafePointer<lgap_packed>?]
    public let cout: Int, cin: Int

    public init(convWeight w: Tensor) {
        precondition(w.rank == 4 && w.shape[2] == 3 && w.shape[3] == 3, "Winograd F(2×2,3×3) needs a 3×3 kernel; got \(w.shape)")
        (cout, cin) = (w.shape[0], w.shape[1])
        let (co, ci) = (cout, cin)
        // Transformed straight into the packed layout, split by output channel (in whole MR-row
        // panels) over the workers: a bare conv2d call does this every time.
        matrices = (0..<16).map { _ in PackedWeights(emptyA: co, cols: ci) }
        let targets: [UnsafeMutablePointer<Float>?] = matrices.map { $0.handle.pointee.data }
        let mr = PackedWeights.tile.mr, groups = (co + mr - 1) / mr
        w.withData { src in
            targets.withUnsafeBufferPointer { t in
                let (ps, pt) = (SendablePointer(src), SendablePointer(UnsafeMutablePointer(mutating: t.baseAddress!)))
                parallelRanges(groups, grain: max(1, 65536 / max(mr * ci, 1))) { r in
                    lgap_winograd_weights_packed(
                        ps.pointer, co, ci, r.lowerBound * mr, min(co, r.upperBound * mr),
                        UnsafePointer(pt.pointer))
                }
            }
        }
        handles = matrices.map { UnsafePointer($0.handle) }
    }
}

/// Tiles per block (one worker call): about 4 MB of transformed input + output (V and M, L2 and the
/// near L3), but at least 96 tiles so each of the 16 GEMMs is wide enough for the micro-kernel to
/// reuse its weight panel, and at most 192 (measured on the VAE, SD, WideResNet and pack shapes in
/// `lgap-bench ops`: narrower blocks starve the GEMM, wider ones spill the transforms out of cache).
func winogradBlockTiles(cin: Int, cout: Int) -> Int {
    min(192, max(96, (1 << 20) / (16 * (cin + cout))))
}

/// x: [N, Cin, H, W] → [N, Cout, H + 2·padding − 2, W + 2·padding − 2], 3×3 kernel, stride 1.
public func conv2dWinograd(_ x: Tensor, weights ww: WinogradWeights, bias: Tensor?, padding: Int) -> Tensor {
    precondition(x.rank == 4 && x.shape[1] == ww.cin, "conv2dWinograd: input \(x.shape), weights expect \(ww.cin) channels")
    let (n, cin, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let cout = ww.cout
    let ho = h + 2 * padding - 2, wo = w + 2 * padding - 2
    precondition(ho > 0 && wo > 0, "conv2dWinograd: 3×3 kernel larger than padded input \(h)×\(w)")
    let out = Tensor(uninitialized: [n, cout, ho, wo])
    let tilesX = (wo + 1) / 2, tilesY = (ho + 1) / 2, tileRows = n * tilesY
    let targetTiles = max(tilesX, winogradBlockTiles(cin: cin, cout: cout))
    // Split the work by tile rows (each worker reads all of U), or, when the whole batch is a single
    // block (a small batch of small maps) and U is larger than a core's L2 (2 MiB: 16·cin·cout floats),
    // by output channel: then U is read once in all and every GEMM keeps the full tile width, at the
    // cost of each worker transforming the whole input (which made the pack UNet's 128-channel layers
    // at batch 2 slower: 30.5 → 32.5 ms). Each output value is computed the same way either way.
    let mr = PackedWeights.tile.mr
    let byChannel = Engine.threads > 1 && tileRows * tilesX <= targetTiles && cout >= 2 * mr && 16 * cin * cout * 4 > 2 << 20
    let workers = byChannel ? min(Engine.threads, cout / mr) : min(Engine.threads, tileRows)
    // Block count: enough to keep blocks near the target size, rounded up to a multiple of the
    // workers so they finish together.
    let wanted = max(1, (tileRows * tilesX + targetTiles - 1) / targetTiles)
    let rounded = byChannel ? 1 : (wanted + workers - 1) / workers * workers
    let rowsPerBlock = max(1, (tileRows + rounded - 1) / rounded)
    let blocks = (tileRows + rowsPerBlock - 1) / rowsPerBlock
    let channelsPer = byChannel ? (cout + workers * mr - 1) / (workers * mr) * mr : cout
    let scratchSize = lgap_winograd_scratch_size(cin, cout, wo, rowsPerBlock)
    let scratch = Tensor(uninitialized: [workers * scratchSize])
    x.withData { xp in
        out.withFreshData { op in
            scratch.withFreshData { sp in
                withOptionalData(bias) { bp in
                    let (px, po, ps) = (SendablePointer(xp), SendablePointer(op), SendablePointer(sp))
                    let pb = bp.map { SendablePointer($0) }
                    let per = byChannel ? blocks : (blocks + workers - 1) / workers
                    let run: @Sendable (Int) -> Void = { wk in
                        let ko0 = byChannel ? min(cout, wk * channelsPer) : 0, ko1 = byChannel ? min(cout, ko0 + channelsPer) : cout
                        let first = byChannel ? 0 : wk * per
                        guard ko1 > ko0 else { return }
                        ww.handles.withUnsafeBufferPointer { u in
                            for block in first..<min(blocks, first + per) {
                                let row0 = block * rowsPerBlock, rows = min(rowsPerBlock, tileRows - row0)
                                lgap_winograd_conv(
                                    u.baseAddress, cout, px.pointer, cin, h, w, padding, ho, wo, pb.map { UnsafePointer($0.pointer) },
                                    row0, rows, ko0, ko1, ps.pointer + wk * scratchSize, po.pointer)
                            }
                        }
                    }
                    if workers <= 1 { run(0) } else { DispatchQueue.concurrentPerform(iterations: workers, execute: run) }
                }
            }
        }
    }
    return out
}
