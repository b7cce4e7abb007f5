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

/// A GEMM operand packed once (constant weights): `side` 0 = A (rows × cols = M × K), 1 = B (K × N).
typedef struct {
    float *data;
    ptrdiff_t rows, cols;
    int side;
} lgap_packed;

/// Packs op(A) [m×k] (or op(B) [k×n]) for the running CPU's micro-kernel; free with lgap_packed_free.
lgap_packed *lgap_pack_a(int trans_a, ptrdiff_t m, ptrdiff_t k, const float *a, ptrdiff_t lda);
lgap_packed *lgap_pack_b(int trans_b, ptrdiff_t k, ptrdiff_t n, const float *b, ptrdiff_t ldb);
void lgap_packed_free(lgap_packed *p);

/// An A operand [m×k] to be filled in place by a producer that writes the packed layout itself (the
/// Winograd weight transform): padding rows are zero, the rest uninitialised. Element (i, p) lives at
/// data[pc·padded + (i − i mod mr)·kc + (p − pc)·mr + i mod mr], with pc = p − p mod kb and
/// kc = min(kb, k − pc); lgap_packed_a_geometry gives mr, kb and padded (rows rounded up to mr).
lgap_packed *lgap_packed_a_empty(ptrdiff_t m, ptrdiff_t k);
void lgap_packed_a_geometry(ptrdiff_t m, ptrdiff_t k, int *mr, ptrdiff_t *kb, ptrdiff_t *padded);

/// GEMM with either operand prepacked (pass NULL to use the plain pointer instead): C[m×n] covers
/// rows row0.. of A and columns col0.. of B (row0 a multiple of the kernel's MR when A is packed,
/// col0 a multiple of its NR when B is packed: lgap_sgemm_tile() gives them).
void lgap_sgemm_packed(const lgap_packed *pa, int trans_a, const float *a, ptrdiff_t lda,
                       const lgap_packed *pb, int trans_b, const float *b, ptrdiff_t ldb,
                       ptrdiff_t row0, ptrdiff_t m, ptrdiff_t col0, ptrdiff_t n, ptrdiff_t k, float alpha, float beta,
                       float *c, ptrdiff_t ldc);

/// The micro-kernel's tile (MR rows × NR columns).
void lgap_sgemm_tile(int *mr, int *nr);

void lgap_sgemm(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha,
                const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb, float beta,
                float *c, ptrdiff_t ldc);

/// One image's convolution (weights optionally prepacked with lgap_pack_a) as a GEMM whose B operand is packed straight from the image (no column
/// matrix): out[cout, ho·wo] columns col0..col0+cols = weight[cout, cin·kh·kw] · im2col(x)[:, cols].
/// x: [cin, h, w]; dilation 1, groups 1. Bias is not added.
void lgap_conv2d_image(const float *weight, const lgap_packed *packed_weight, ptrdiff_t cout, const float *x, ptrdiff_t cin,
                       ptrdiff_t h, ptrdiff_t w, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t ph, ptrdiff_t pw,
                       ptrdiff_t ho, ptrdiff_t wo, ptrdiff_t col0, ptrdiff_t cols, float *out);

/// A batch of images' convolution as one GEMM into a [cout, images·ho·wo] matrix (image-major
/// columns); the caller scatters it to NCHW. For small images, where one GEMM per image is too small.
void lgap_conv2d_batch(const float *weight, const lgap_packed *packed_weight, ptrdiff_t cout, const float *x, ptrdiff_t cin,
                       ptrdiff_t h, ptrdiff_t w, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t ph, ptrdiff_t pw,
                       ptrdiff_t ho, ptrdiff_t wo, ptrdiff_t images, float *out);

/// The micro-kernel in use: "avx512", "avx2" or "generic".
const char *lgap_sgemm_kernel(void);

#ifdef __cplusplus
}
#endif
#endif
