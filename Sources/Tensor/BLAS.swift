// The single door to GEMM: every matrix product in the engine goes through `BLAS.sgemm`.
//
// Two backends compute the same product: OpenBLAS's cblas_sgemm, and the engine's own packed
// micro-kernel GEMM (CKernels/gemm.c, AVX-512/AVX2 chosen at run time). The engine's is the default:
// OpenBLAS 0.3.21 picks its kernel from OPENBLAS_CORETYPE or CPU detection, which on this machine
// gives the generic Prescott kernel when unset and the AVX2 Haswell kernel under the environment's
// preset, neither using AVX-512. LGAP_GEMM=openblas selects OpenBLAS (the benchmark runs both).
//
// Threads: OpenBLAS's own pool spins and synchronises per call; on a loaded 2-core machine (a daemon
// beside other work) one multithreaded OpenBLAS GEMM was measured 20× slower than single-threaded.
// So both backends run single-threaded and the engine splits large GEMMs itself into column or row
// blocks on `Engine.threads` Dispatch workers.
import CKernels
import COpenBLAS
import Dispatch
import Foundation

public enum GEMMBackend: String, Sendable {
    case engine, openblas
}

public enum BLAS {
    /// Which GEMM implementation runs (default: engine; LGAP_GEMM=openblas for OpenBLAS).
    nonisolated(unsafe) public static var backend: GEMMBackend =
        GEMMBackend(rawValue: ProcessInfo.processInfo.environment["LGAP_GEMM"] ?? "") ?? .engine

    @usableFromInline nonisolated(unsafe) static var configured = false

    /// Makes OpenBLAS single-threaded (the engine parallelises around it). Idempotent.
    @inlinable public static func configure() {
        if configured { return }
        openblas_set_num_threads(1)
        configured = true
    }

    /// C[m×n] = alpha · op(A)[m×k] · op(B)[k×n] + beta · C, all row-major; split across
    /// `Engine.threads` workers when the product is large enough to pay for it.
    @inlinable
    public static func sgemm(
        transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int, parallel: Bool = true
    ) {
        if m == 0 || n == 0 { return }
        configure()
        let workers = parallel ? min(Engine.threads, max(1, (m * n * k) / (1 << 21))) : 1
        if workers <= 1 {
            gemm(
                transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                beta: beta, c: c, ldc: ldc)
            return
        }
        let (pa, pb, pc) = (SendablePointer(a), SendablePointer(b), SendablePointer(c))
        if n >= m {
            // Column blocks: C[:, j0..<j1] = op(A) · op(B)[:, j0..<j1]; blocks a multiple of 16 wide.
            let block = ((n + workers - 1) / workers + 15) / 16 * 16
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                let j0 = w * block, j1 = min(n, j0 + block)
                guard j0 < j1 else { return }
                let bj = transB ? pb.pointer + j0 * ldb : pb.pointer + j0
                gemm(
                    transA: transA, transB: transB, m: m, n: j1 - j0, k: k, alpha: alpha, a: UnsafePointer(pa.pointer), lda: lda,
                    b: UnsafePointer(bj), ldb: ldb, beta: beta, c: pc.pointer + j0, ldc: ldc)
            }
        } else {
            // Row blocks: C[i0..<i1, :] = op(A)[i0..<i1, :] · op(B).
            let block = (m + workers - 1) / workers
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                let i0 = w * block, i1 = min(m, i0 + block)
                guard i0 < i1 else { return }
                let ai = transA ? pa.pointer + i0 : pa.pointer + i0 * lda
                gemm(
                    transA: transA, transB: transB, m: i1 - i0, n: n, k: k, alpha: alpha, a: UnsafePointer(ai), lda: lda,
                    b: UnsafePointer(pb.pointer), ldb: ldb, beta: beta, c: pc.pointer + i0 * ldc, ldc: ldc)
            }
        }
    }

    /// One single-threaded GEMM call on the selected backend.
    @inlinable
    @usableFromInline static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if backend == .engine {
            lgap_sgemm(transA ? 1 : 0, transB ? 1 : 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
            return
        }
        cblas_sgemm(
            CblasRowMajor,
            transA ? CblasTrans : CblasNoTrans,
            transB ? CblasTrans : CblasNoTrans,
            /* M: */ Int32(m), /* N: */ Int32(n), /* K: */ Int32(k),
            /* alpha: */ alpha, /* A: */ a, /* lda: */ Int32(lda),
            /* B: */ b, /* ldb: */ Int32(ldb),
            /* beta: */ beta, /* C: */ c, /* ldc: */ Int32(ldc))
    }

    /// The engine GEMM's micro-kernel for this CPU ("avx512", "avx2" or "generic").
    public static var engineKernel: String { String(cString: lgap_sgemm_kernel()) }

    /// The kernel OpenBLAS chose at load time (from the CPU or OPENBLAS_CORETYPE), e.g. "Haswell".
    public static var coreName: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }
}
