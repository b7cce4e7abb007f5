// Matrix products on cblas_sgemm.
import CKernels

/// a: [..., M, K], b: [K, N] → [..., M, N]. Leading dimensions of `a` fold into M.
public func matmul(_ a: Tensor, _ b: Tensor) -> Tensor {
    precondition(a.rank >= 2 && b.rank == 2, "matmul needs a: [..., M, K], b: [K, N]; got \(a.shape), \(b.shape)")
    let k = a.shape[a.rank - 1], n = b.shape[1]
    precondition(b.shape[0] == k, "matmul inner dimensions differ: \(a.shape) × \(b.shape)")
    let m = a.count / max(k, 1)
    let out = Tensor(uninitialized: Array(a.shape.dropLast()) + [n])
    a.withData { ap in b.withData { bp in out.withFreshData { cp in
        BLAS.sgemm(m: m, n: n, k: k, a: ap, lda: k, b: bp, ldb: n, c: cp, ldc: n)
    } } }
    return out
}

/// x: [..., in], weight: [out, in], bias: [out]? → [..., out]  (x · weightᵀ + bias, torch.nn.functional.linear)
public func linear(_ x: Tensor, weight: Tensor, bias: Tensor? = nil) -> Tensor {
    precondition(weight.rank == 2, "linear weight must be [out, in], got \(weight.shape)")
    let inF = weight.shape[1], outF = weight.shape[0]
    precondition(x.rank >= 1 && x.shape[x.rank - 1] == inF, "linear: input \(x.shape) does not end in \(inF)")
    if let bias { precondition(bias.shape == [outF], "linear bias \(bias.shape), expected [\(outF)]") }
    let m = x.count / max(inF, 1)
    let out = Tensor(uninitialized: Array(x.shape.dropLast()) + [outF])
    x.withData { xp in weight.withData { wp in out.withFreshData { cp in
        var beta: Float = 0
        if let bias {
            // Start C from the bias so the GEMM adds into it (beta = 1): one pass over C fewer.
            bias.withData { bp in
                for r in 0..<m { (cp + r * outF).update(from: bp, count: outF) }
            }
            beta = 1
        }
        BLAS.sgemm(transB: true, m: m, n: outF, k: inF, a: xp, lda: inF, b: wp, ldb: inF, beta: beta, c: cp, ldc: outF)
    } } }
    return out
}

/// a: [B, M, K], b: [B, K, N] (or [B, N, K] with transposeB) → [B, M, N]; `alpha` scales the product.
public func bmm(_ a: Tensor, _ b: Tensor, transposeB: Bool = false, alpha: Float = 1) -> Tensor {
    precondition(a.rank == 3 && b.rank == 3 && a.shape[0] == b.shape[0], "bmm needs [B, M, K] and [B, K, N]; got \(a.shape), \(b.shape)")
    let batch = a.shape[0], m = a.shape[1], k = a.shape[2]
    let n = transposeB ? b.shape[1] : b.shape[2]
    precondition((transposeB ? b.shape[2] : b.shape[1]) == k, "bmm inner dimensions differ: \(a.shape) × \(b.shape)")
    let out = Tensor(uninitialized: [batch, m, n])
    a.withData { ap in b.withData { bp in out.withFreshData { cp in
        for i in 0..<batch {
            BLAS.sgemm(transB: transposeB, m: m, n: n, k: k, alpha: alpha, a: ap + i * m * k, lda: k,
                       b: bp + i * k * n, ldb: transposeB ? k : n, c: cp + i * m * n, ldc: n)
        }
    } } }
    return out
}
