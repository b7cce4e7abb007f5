// Matrix products on cblas_sgemm.
import CKernels
import Dispatch

/// a: [..., M, K], b: [K, N] → [..., M, N]. Leading dimensions of `a` fold into M.
public func matmul(_ a: Tensor, _ b: Tensor) -> Tensor {
    precondition(a.rank >= 2 && b.rank == 2, "matmul needs a: [..., M, K], b: [K, N]; got \(a.shape), \(b.shape)")
    let k = a.shape[a.rank - 1], n = b.shape[1]
    precondition(b.shape[0] == k, "matmul inner dimensions differ: \(a.shape) × \(b.shape)")
    let m = a.count / max(k, 1)
    let out = Tensor(uninitialized: Array(a.shape.dropLast()) + [n])
    a.withData { ap in
        b.withData { bp in
            out.withFreshData { cp in
                BLAS.sgemm(m: m, n: n, k: k, a: ap, lda: k, b: bp, ldb: n, c: cp, ldc: n)
            }
        }
    }
    return out
}

/// x: [..., in], weight: [out, in], bias: [out]? → [..., out]  (x · weightᵀ + bias, torch.nn.functional.linear)
/// `packed`: the same weight prepacked (engine GEMM only), read instead of packing it per call.
public func linear(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, packed: PackedWeights? = nil) -> Tensor {
    precondition(weight.rank == 2, "linear weight must be [out, in], got \(weight.shape)")
    let inF = weight.shape[1], outF = weight.shape[0]
    precondition(x.rank >= 1 && x.shape[x.rank - 1] == inF, "linear: input \(x.shape) does not end in \(inF)")
    if let bias { precondition(bias.shape == [outF], "linear bias \(bias.shape), expected [\(outF)]") }
    let m = x.count / max(inF, 1)
    let out = Tensor(uninitialized: Array(x.shape.dropLast()) + [outF])
    x.withData { xp in
        weight.withData { wp in
            out.withFreshData { cp in
                var beta: Float = 0
                if let bias {
                    // Start C from the bias so the GEMM adds into it (beta = 1): one pass over C fewer.
                    bias.withData { bp in
                        for r in 0..<m { (cp + r * outF).update(from: bp, count: outF) }
                    }
                    beta = 1
                }
                if let packed, BLAS.backend == .engine {
                    packedLinear(xp, m: m, k: inF, n: outF, packed: packed, beta: beta, c: cp)
                } else {
                    BLAS.sgemm(transB: true, m: m, n: outF, k: inF, a: xp, lda: inF, b: wp, ldb: inF, beta: beta, c: cp, ldc: outF)
                }
            }
        }
    }
    return out
}

/// C[m×n] = x[m×k] · (packed B) + beta·C, split over rows (or, for few rows, over NR-aligned column
/// blocks) on the engine's workers.
func packedLinear(_ x: UnsafePointer<Float>, m: Int, k: Int, n: Int, packed: PackedWeights, beta: Float, c: UnsafeMutablePointer<Float>) {
    let workers = min(Engine.threads, max(1, (m * n * k) / (1 << 20)))
    let (px, pc) = (SendablePointer(x), SendablePointer(c))
    if workers <= 1 {
        lgap_sgemm_packed(nil, 0, x, k, packed.handle, 1, nil, 0, 0, m, 0, n, k, 1, beta, c, n)
    } else if m >= workers * 8 {
        let block = (m + workers - 1) / workers
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            let r0 = w * block, r1 = min(m, r0 + block)
            guard r0 < r1 else { return }
            lgap_sgemm_packed(
                nil, 0, px.pointer + r0 * k, k, packed.handle, 1, nil, 0, 0, r1 - r0, 0, n, k, 1, beta,
                pc.pointer + r0 * n, n)
        }
    } else {
        let nr = PackedWeights.tile.nr
        let block = ((n + workers - 1) / workers + nr - 1) / nr * nr
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            let c0 = w * block, c1 = min(n, c0 + block)
            guard c0 < c1 else { return }
            lgap_sgemm_packed(nil, 0, px.pointer, k, packed.handle, 1, nil, 0, 0, m, c0, c1 - c0, k, 1, beta, pc.pointer + c0, n)
        }
    }
}

/// a: [B, M, K], b: [B, K, N] (or [B, N, K] with transposeB) → [B, M, N]; `alpha` scales the product.
public func bmm(_ a: Tensor, _ b: Tensor, transposeB: Bool = false, alpha: Float = 1) -> Tensor {
    precondition(a.rank == 3 && b.rank == 3 && a.shape[0] == b.shape[0], "bmm needs [B, M, K] and [B, K, N]; got \(a.shape), \(b.shape)")
    let batch = a.shape[0], m = a.shape[1], k = a.shape[2]
    let n = transposeB ? b.shape[1] : b.shape[2]
    precondition((transposeB ? b.shape[2] : b.shape[1]) == k, "bmm inner dimensions differ: \(a.shape) × \(b.shape)")
    let out = Tensor(uninitialized: [batch, m, n])
    a.withData { ap in
        b.withData { bp in
            out.withFreshData { cp in
                for i in 0..<batch {
                    BLAS.sgemm(
                        transB: transposeB, m: m, n: n, k: k, alpha: alpha, a: ap + i * m * k, lda: k,
                        b: bp + i * k * n, ldb: transposeB ? k : n, c: cp + i * m * n, ldc: n)
                }
            }
        }
    }
    return out
}
