// The engine's packed GEMM against a naive triple loop, across shapes that hit every edge: tiles
// smaller than the register block, K deeper than one packing slice (256), N wider than one column
// block (3072), transposed operands, alpha and beta. Both backends are checked.
import CKernels
import Tensor
import TestSupport
import XCTest

final class GEMMTests: XCTestCase {
    func naive(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: [Float], lda: Int, b: [Float], ldb: Int,
        beta: Float, c: [Float], ldc: Int
    ) -> [Float] {
        var out = c
        for i in 0..<m {
            for j in 0..<n {
                var acc: Double = 0
                for p in 0..<k {
                    let av = transA ? a[p * lda + i] : a[i * lda + p]
                    let bv = transB ? b[j * ldb + p] : b[p * ldb + j]
                    acc += Double(av) * Double(bv)
                }
                out[i * ldc + j] = alpha * Float(acc) + (beta == 0 ? 0 : beta * c[i * ldc + j])
            }
        }
        return out
    }

    func testEngineGEMMMatchesNaive() {
        var seed: UInt64 = 42
        func rnd(_ n: Int) -> [Float] {
            (0..<n).map { _ in
                seed = seed &* 6364136223846793005 &+ 1442695040888963407
                return Float(Int64(bitPattern: seed >> 12) % 2000) / 1000 - 1
            }
        }
        let shapes = [
            (1, 1, 1), (7, 5, 3), (8, 32, 16), (9, 33, 17), (16, 1024, 144), (37, 70, 300), (130, 45, 513), (3, 3100, 20),
            (200, 7, 64)
        ]
        for backend in [GEMMBackend.engine, .openblas] {
            BLAS.backend = backend
            for (m, n, k) in shapes {
                for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                    for (alpha, beta) in [(Float(1), Float(0)), (0.5, 0.3), (1, 1)] {
                        let lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 2, ldc = n + 1
                        let a = rnd((ta ? k : m) * lda), b = rnd((tb ? n : k) * ldb), c0 = rnd(m * ldc)
                        var c = c0
                        a.withUnsafeBufferPointer { ap in
                            b.withUnsafeBufferPointer { bp in
                                c.withUnsafeMutableBufferPointer { cp in
                                    BLAS.sgemm(
                                        transA: ta, transB: tb, m: m, n: n, k: k, alpha: alpha, a: ap.baseAddress!, lda: lda,
                                        b: bp.baseAddress!, ldb: ldb, beta: beta, c: cp.baseAddress!, ldc: ldc)
                                }
                            }
                        }
                        let ref = naive(
                            transA: ta, transB: tb, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                            beta: beta, c: c0, ldc: ldc)
                        let cmp = compare(
                            Tensor(shape: [m * ldc], data: c), Tensor(shape: [m * ldc], data: ref), atol: 1e-4, rtol: 1e-4,
                            name: "\(backend) sgemm m\(m) n\(n) k\(k) tA\(ta) tB\(tb) α\(alpha) β\(beta)")
                        XCTAssert(cmp.ok, cmp.report)
                    }
                }
            }
        }
        BLAS.backend = .engine
        print("engine GEMM kernel: \(BLAS.engineKernel)")
    }
}

final class PackedGEMMTests: XCTestCase {
    /// Prepacked weights give the same linear and conv results as packing per call, including the
    /// row- and column-split paths.
    func testPackedWeightsMatchUnpacked() {
        var seed: UInt64 = 7
        func rnd(_ shape: [Int]) -> Tensor {
            Tensor(
                shape: shape,
                data: (0..<Tensor.elementCount(shape)).map { _ in
                    seed = seed &* 6364136223846793005 &+ 1442695040888963407
                    return Float(Int64(bitPattern: seed >> 12) % 2000) / 1000 - 1
                })
        }
        for (m, k, n) in [(3, 257, 70), (64, 300, 1000), (1, 64, 33), (513, 40, 9)] {
            let x = rnd([m, k]), w = rnd([n, k]), b = rnd([n])
            let packed = PackedWeights(linearWeight: w)
            let c = compare(
                linear(x, weight: w, bias: b, packed: packed), linear(x, weight: w, bias: b), atol: 1e-5, rtol: 1e-5,
                name: "packed linear \(m)×\(k)→\(n)")
            XCTAssert(c.ok, c.report)
        }
        for (n, cin, hw, cout, k, s) in [(1, 5, 17, 12, 3, 1), (3, 8, 9, 20, 3, 2), (2, 16, 32, 9, 1, 1), (5, 3, 8, 16, 5, 1)] {
            let x = rnd([n, cin, hw, hw]), w = rnd([cout, cin, k, k]), b = rnd([cout])
            let packed = PackedWeights(convWeight: w)
            let c = compare(
                conv2d(x, weight: w, bias: b, stride: (s, s), padding: (k / 2, k / 2), packed: packed),
                conv2d(x, weight: w, bias: b, stride: (s, s), padding: (k / 2, k / 2)), atol: 1e-4, rtol: 1e-4,
                name: "packed conv n\(n) c\(cin) \(hw)² → \(cout) k\(k) s\(s)")
            XCTAssert(c.ok, c.report)
        }
    }
}
