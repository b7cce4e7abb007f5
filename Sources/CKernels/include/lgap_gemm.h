// The engine's own single-threaded SGEMM: BLIS-style cache blocking and packing around register
// micro-kernels for AVX-512 (8×32 tiles), AVX2+FMA (6×16) and plain C (4×8), chosen at run time
// from the CPU. Row-major: C[m×n] = alpha · op(A)[m×k] · op(B)[k×n] + beta · C.
// OpenBLAS remains available (Tensor's BLAS.backend); this kernel does not depend on
// OPENBLAS_CORETYPE, which on this machine picks a generic kernel when unset.
#ifndef LGAP_GEMM_H
#define LGAP_GEMM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

void lgap_sgemm(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha,
                const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb, float beta,
                float *c, ptrdiff_t ldc);

/// The micro-kernel in use: "avx512", "avx2" or "generic".
const char *lgap_sgemm_kernel(void);

#ifdef __cplusplus
}
#endif
#endif
