// The single door to OpenBLAS: every GEMM in the engine goes through `BLAS.sgemm`.
import COpenBLAS

public enum BLAS {
    /// C[m×n] = alpha · op(A)[m×k] · op(B)[k×n] + beta · C, all row-major.
    @inlinable
    public static func sgemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                             alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                             b: UnsafePointer<Float>, ldb: Int,
                             beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        if m == 0 || n == 0 { return }
        cblas_sgemm(CblasRowMajor,
                    transA ? CblasTrans : CblasNoTrans,
                    transB ? CblasTrans : CblasNoTrans,
                    /* M: */ Int32(m), /* N: */ Int32(n), /* K: */ Int32(k),
                    /* alpha: */ alpha, /* A: */ a, /* lda: */ Int32(lda),
                    /* B: */ b, /* ldb: */ Int32(ldb),
                    /* beta: */ beta, /* C: */ c, /* ldc: */ Int32(ldc))
    }

    /// Threads OpenBLAS uses inside one GEMM.
    public static var threads: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(max(1, newValue))) }
    }

    /// The kernel OpenBLAS chose at load time (from the CPU or OPENBLAS_CORETYPE), e.g. "Haswell".
    public static var coreName: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }
}
