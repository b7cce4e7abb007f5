// Single-threaded SGEMM with packing and register-blocked micro-kernels (see lgap_gemm.h).
//
// Loop nest (BLIS): for each NC-wide column block of B and KC-deep slice of K, pack that B slice
// into NR-wide panels; for each MC-tall row block of A, pack it into MR-tall panels; then run the
// micro-kernel over every MR×NR tile. Edge tiles go through a small buffer. Packing reads either
// orientation, so op(A)/op(B) transposes cost nothing extra.
#include "lgap_gemm.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

enum { KC = 256, NC = 3072 };

static ptrdiff_t round_up(ptrdiff_t v, ptrdiff_t to) { return (v + to - 1) / to * to; }

// K slice depth for a product of depth k: KC, except that a K up to 1.5·KC stays in one slice. Each
// extra slice reads and writes all of C again; for SD's 320-deep layers (a 4608×2560 output) that
// second pass over C cost more than the arithmetic. The slice's B panel (≤ 384×32 floats) still
// sits in L1/L2.
static ptrdiff_t kc_block(ptrdiff_t k) { return k <= KC + KC / 2 ? (k > 0 ? k : 1) : KC; }

typedef void (*kernel_fn)(ptrdiff_t kc, const float *a, const float *b, float *c, ptrdiff_t ldc, float alpha, float beta);

// ---- micro-kernels: acc[MR×NR] = Σ_p a[p·MR + i] · b[p·NR + j];
//      c[i·ldc + j] = alpha·acc + beta·c (c is not read when beta is 0).

static void kernel_generic(ptrdiff_t kc, const float *a, const float *b, float *c, ptrdiff_t ldc, float alpha, float beta) {
    float acc[4][8] = {{0}};
    for (ptrdiff_t p = 0; p < kc; p++) {
        for (int i = 0; i < 4; i++) {
            float ai = a[p * 4 + i];
            for (int j = 0; j < 8; j++) acc[i][j] += ai * b[p * 8 + j];
        }
    }
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 8; j++) c[i * ldc + j] = alpha * acc[i][j] + (beta == 0.0f ? 0.0f : beta * c[i * ldc + j]);
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma")))
static inline void store_avx2(float *c, __m256 acc, __m256 alpha, __m256 beta, int accumulate) {
    acc = _mm256_mul_ps(acc, alpha);
    if (accumulate) acc = _mm256_fmadd_ps(beta, _mm256_loadu_ps(c), acc);
    _mm256_storeu_ps(c, acc);
}

__attribute__((target("avx2,fma")))
static void kernel_avx2(ptrdiff_t kc, const float *a, const float *b, float *c, ptrdiff_t ldc, float alpha_, float beta_) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (ptrdiff_t p = 0; p < kc; p++) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        __m256 x;
        x = _mm256_broadcast_ss(a + 0); c00 = _mm256_fmadd_ps(x, b0, c00); c01 = _mm256_fmadd_ps(x, b1, c01);
        x = _mm256_broadcast_ss(a + 1); c10 = _mm256_fmadd_ps(x, b0, c10); c11 = _mm256_fmadd_ps(x, b1, c11);
        x = _mm256_broadcast_ss(a + 2); c20 = _mm256_fmadd_ps(x, b0, c20); c21 = _mm256_fmadd_ps(x, b1, c21);
        x = _mm256_broadcast_ss(a + 3); c30 = _mm256_fmadd_ps(x, b0, c30); c31 = _mm256_fmadd_ps(x, b1, c31);
        x = _mm256_broadcast_ss(a + 4); c40 = _mm256_fmadd_ps(x, b0, c40); c41 = _mm256_fmadd_ps(x, b1, c41);
        x = _mm256_broadcast_ss(a + 5); c50 = _mm256_fmadd_ps(x, b0, c50); c51 = _mm256_fmadd_ps(x, b1, c51);
        a += 6;
        b += 16;
    }
    __m256 al = _mm256_set1_ps(alpha_), be = _mm256_set1_ps(beta_);
    int acc = beta_ != 0.0f;
    store_avx2(c + 0 * ldc, c00, al, be, acc); store_avx2(c + 0 * ldc + 8, c01, al, be, acc);
    store_avx2(c + 1 * ldc, c10, al, be, acc); store_avx2(c + 1 * ldc + 8, c11, al, be, acc);
    store_avx2(c + 2 * ldc, c20, al, be, acc); store_avx2(c + 2 * ldc + 8, c21, al, be, acc);
    store_avx2(c + 3 * ldc, c30, al, be, acc); store_avx2(c + 3 * ldc + 8, c31, al, be, acc);
    store_avx2(c + 4 * ldc, c40, al, be, acc); store_avx2(c + 4 * ldc + 8, c41, al, be, acc);
    store_avx2(c + 5 * ldc, c50, al, be, acc); store_avx2(c + 5 * ldc + 8, c51, al, be, acc);
}

__attribute__((target("avx512f")))
static inline void store_avx512(float *c, __m512 acc, __m512 alpha, __m512 beta, int accumulate) {
    acc = _mm512_mul_ps(acc, alpha);
    if (accumulate) acc = _mm512_fmadd_ps(beta, _mm512_loadu_ps(c), acc);
    _mm512_storeu_ps(c, acc);
}

__attribute__((target("avx512f")))
static void kernel_avx512(ptrdiff_t kc, const float *a, const float *b, float *c, ptrdiff_t ldc, float alpha_, float beta_) {
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
    __m512 c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00, c61 = c00, c70 = c00, c71 = c00;
    for (ptrdiff_t p = 0; p < kc; p++) {
        __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
        __m512 x;
        x = _mm512_set1_ps(a[0]); c00 = _mm512_fmadd_ps(x, b0, c00); c01 = _mm512_fmadd_ps(x, b1, c01);
        x = _mm512_set1_ps(a[1]); c10 = _mm512_fmadd_ps(x, b0, c10); c11 = _mm512_fmadd_ps(x, b1, c11);
        x = _mm512_set1_ps(a[2]); c20 = _mm512_fmadd_ps(x, b0, c20); c21 = _mm512_fmadd_ps(x, b1, c21);
        x = _mm512_set1_ps(a[3]); c30 = _mm512_fmadd_ps(x, b0, c30); c31 = _mm512_fmadd_ps(x, b1, c31);
        x = _mm512_set1_ps(a[4]); c40 = _mm512_fmadd_ps(x, b0, c40); c41 = _mm512_fmadd_ps(x, b1, c41);
        x = _mm512_set1_ps(a[5]); c50 = _mm512_fmadd_ps(x, b0, c50); c51 = _mm512_fmadd_ps(x, b1, c51);
        x = _mm512_set1_ps(a[6]); c60 = _mm512_fmadd_ps(x, b0, c60); c61 = _mm512_fmadd_ps(x, b1, c61);
        x = _mm512_set1_ps(a[7]); c70 = _mm512_fmadd_ps(x, b0, c70); c71 = _mm512_fmadd_ps(x, b1, c71);
        a += 8;
        b += 32;
    }
    __m512 al = _mm512_set1_ps(alpha_), be = _mm512_set1_ps(beta_);
    int acc = beta_ != 0.0f;
    store_avx512(c + 0 * ldc, c00, al, be, acc); store_avx512(c + 0 * ldc + 16, c01, al, be, acc);
    store_avx512(c + 1 * ldc, c10, al, be, acc); store_avx512(c + 1 * ldc + 16, c11, al, be, acc);
    store_avx512(c + 2 * ldc, c20, al, be, acc); store_avx512(c + 2 * ldc + 16, c21, al, be, acc);
    store_avx512(c + 3 * ldc, c30, al, be, acc); store_avx512(c + 3 * ldc + 16, c31, al, be, acc);
    store_avx512(c + 4 * ldc, c40, al, be, acc); store_avx512(c + 4 * ldc + 16, c41, al, be, acc);
    store_avx512(c + 5 * ldc, c50, al, be, acc); store_avx512(c + 5 * ldc + 16, c51, al, be, acc);
    store_avx512(c + 6 * ldc, c60, al, be, acc); store_avx512(c + 6 * ldc + 16, c61, al, be, acc);
    store_avx512(c + 7 * ldc, c70, al, be, acc); store_avx512(c + 7 * ldc + 16, c71, al, be, acc);
}

// The left half of kernel_avx512's tile (8×16) over the same 32-wide B panels: a column block whose
// last panel holds at most 16 real columns (a batch-1 Winograd product has 16 tiles, ResNet-50's last
// stage 16 pixels per image) would otherwise spend half of its multiplies on the panel's zero padding.
// Each output is accumulated in the same order as in the full kernel, so results are bitwise equal.
__attribute__((target("avx512f")))
static void kernel_avx512_half(ptrdiff_t kc, const float *a, const float *b, float *c, ptrdiff_t ldc, float alpha_, float beta_) {
    __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0;
    for (ptrdiff_t p = 0; p < kc; p++) {
        __m512 b0 = _mm512_loadu_ps(b);
        c0 = _mm512_fmadd_ps(_mm512_set1_ps(a[0]), b0, c0);
        c1 = _mm512_fmadd_ps(_mm512_set1_ps(a[1]), b0, c1);
        c2 = _mm512_fmadd_ps(_mm512_set1_ps(a[2]), b0, c2);
        c3 = _mm512_fmadd_ps(_mm512_set1_ps(a[3]), b0, c3);
        c4 = _mm512_fmadd_ps(_mm512_set1_ps(a[4]), b0, c4);
        c5 = _mm512_fmadd_ps(_mm512_set1_ps(a[5]), b0, c5);
        c6 = _mm512_fmadd_ps(_mm512_set1_ps(a[6]), b0, c6);
        c7 = _mm512_fmadd_ps(_mm512_set1_ps(a[7]), b0, c7);
        a += 8;
        b += 32;
    }
    __m512 al = _mm512_set1_ps(alpha_), be = _mm512_set1_ps(beta_);
    int acc = beta_ != 0.0f;
    store_avx512(c + 0 * ldc, c0, al, be, acc); store_avx512(c + 1 * ldc, c1, al, be, acc);
    store_avx512(c + 2 * ldc, c2, al, be, acc); store_avx512(c + 3 * ldc, c3, al, be, acc);
    store_avx512(c + 4 * ldc, c4, al, be, acc); store_avx512(c + 5 * ldc, c5, al, be, acc);
    store_avx512(c + 6 * ldc, c6, al, be, acc); store_avx512(c + 7 * ldc, c7, al, be, acc);
}
#endif

typedef struct {
    int mr, nr, mc;
    kernel_fn kernel;
    kernel_fn half;  // the tile's left nr/2 columns only (NULL: none)
    const char *name;
} impl_t;

static impl_t choose(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return (impl_t){8, 32, 128, kernel_avx512, kernel_avx512_half, "avx512"};
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return (impl_t){6, 16, 120, kernel_avx2, NULL, "avx2"};
#endif
    return (impl_t){4, 8, 64, kernel_generic, NULL, "generic"};
}

static impl_t impl_cache;
static int impl_ready = 0;

static impl_t get_impl(void) {
    if (!__atomic_load_n(&impl_ready, __ATOMIC_ACQUIRE)) {
        impl_cache = choose();
        __atomic_store_n(&impl_ready, 1, __ATOMIC_RELEASE);
    }
    return impl_cache;
}

const char *lgap_sgemm_kernel(void) { return get_impl().name; }

// op(A)[i][p] and op(B)[p][j] for row-major storage.
#define A_AT(i, p) (trans_a ? a[(p) * lda + (i)] : a[(i) * lda + (p)])
#define B_AT(p, j) (trans_b ? b[(j) * ldb + (p)] : b[(p) * ldb + (j)])

// Where the B operand comes from: a stored matrix, or the im2col view of one image (so a
// convolution packs its columns straight from the image, never materialising the column matrix).
typedef struct {
    int conv;
    int trans_b;
    const float *b;
    ptrdiff_t ldb;
    const float *x;
    ptrdiff_t h, w, kh, kw, sh, sw, ph, pw, wo;
    ptrdiff_t col0;     // first column of this call's range
    ptrdiff_t plane;    // output pixels per image (ho·wo): columns are (image, pixel) pairs
    ptrdiff_t in_size;  // floats per input image (cin·h·w)
} bsource_t;

// Packs op(B)[pc..pc+kc, jc..jc+nc] into NR-wide panels: panel q holds [kc][nr], zero-padded.
static void pack_b(int trans_b, const float *b, ptrdiff_t ldb, ptrdiff_t pc, ptrdiff_t kc, ptrdiff_t jc, ptrdiff_t nc,
                   int nr, float *bp) {
    for (ptrdiff_t j0 = 0; j0 < nc; j0 += nr) {
        ptrdiff_t w = nc - j0 < nr ? nc - j0 : nr;
        float *dst = bp + j0 * kc;
        if (!trans_b) {
            for (ptrdiff_t p = 0; p < kc; p++) {
                const float *src = b + (pc + p) * ldb + jc + j0;
                memcpy(dst + p * nr, src, (size_t)w * sizeof(float));
                for (ptrdiff_t j = w; j < nr; j++) dst[p * nr + j] = 0.0f;
            }
        } else {
            for (ptrdiff_t j = 0; j < nr; j++) {
                if (j < w) {
                    const float *src = b + (jc + j0 + j) * ldb + pc;
                    for (ptrdiff_t p = 0; p < kc; p++) dst[p * nr + j] = src[p];
                } else {
                    for (ptrdiff_t p = 0; p < kc; p++) dst[p * nr + j] = 0.0f;
                }
            }
        }
    }
}

// Packs columns jc..jc+nc of an image's im2col matrix (rows pc..pc+kc = (channel, ky, kx) triples,
// columns = output pixels) into NR-wide panels, reading the image directly.
static void pack_b_conv(const bsource_t *s, ptrdiff_t pc, ptrdiff_t kc, ptrdiff_t jc, ptrdiff_t nc, int nr, float *bp) {
    // A panel's columns are runs of consecutive output pixels on one output row; each run reads
    // a contiguous (stride 1) or strided stretch of one input row, zero outside the image.
    struct { const float *x; ptrdiff_t oy, ox, len, at; } seg[32];
    const ptrdiff_t taps = s->kh * s->kw;
    for (ptrdiff_t j0 = 0; j0 < nc; j0 += nr) {
        ptrdiff_t wdt = nc - j0 < nr ? nc - j0 : nr;
        float *dst = bp + j0 * kc;
        int nseg = 0;
        for (ptrdiff_t j = 0; j < wdt;) {
            ptrdiff_t q = jc + j0 + j;
            ptrdiff_t img = q / s->plane, pix = q % s->plane;
            ptrdiff_t oy = pix / s->wo, ox = pix % s->wo;
            ptrdiff_t len = s->wo - ox < wdt - j ? s->wo - ox : wdt - j;
            seg[nseg].x = s->x + img * s->in_size;
            seg[nseg].oy = oy; seg[nseg].ox = ox; seg[nseg].len = len; seg[nseg].at = j;
            nseg++;
            j += len;
        }
        for (ptrdiff_t p = 0; p < kc; p++) {
            ptrdiff_t row = pc + p;
            ptrdiff_t ch = row / taps, r = row % taps;
            ptrdiff_t ky = r / s->kw, kx = r % s->kw;
            const ptrdiff_t chan = ch * s->h * s->w;
            float *d = dst + p * nr;
            for (int g = 0; g < nseg; g++) {
                const float *plane = seg[g].x + chan;
                float *o = d + seg[g].at;
                ptrdiff_t len = seg[g].len;
                ptrdiff_t iy = seg[g].oy * s->sh - s->ph + ky;
                if (iy < 0 || iy >= s->h) {
                    memset(o, 0, (size_t)len * sizeof(float));
                    continue;
                }
                const float *in = plane + iy * s->w;
                ptrdiff_t ix0 = seg[g].ox * s->sw - s->pw + kx;
                if (s->sw == 1) {
                    // valid t: 0 <= ix0 + t < w
                    ptrdiff_t lo = ix0 < 0 ? -ix0 : 0;
                    ptrdiff_t hi = s->w - ix0 < len ? s->w - ix0 : len;
                    if (hi < lo) hi = lo;
                    if (lo > len) lo = len;
                    for (ptrdiff_t t = 0; t < lo; t++) o[t] = 0.0f;
                    if (hi > lo) memcpy(o + lo, in + ix0 + lo, (size_t)(hi - lo) * sizeof(float));
                    for (ptrdiff_t t = hi; t < len; t++) o[t] = 0.0f;
                } else {
                    // valid t: 0 <= ix0 + t·sw < w; the bounds-free middle run vectorises (stride 2:
                    // ResNet-50's stem and downsampling layers spent a tenth of a batch-1 forward here).
                    const ptrdiff_t sw = s->sw;
                    ptrdiff_t lo = ix0 < 0 ? (-ix0 + sw - 1) / sw : 0;
                    ptrdiff_t hi = ix0 < s->w ? (s->w - ix0 + sw - 1) / sw : 0;
                    if (hi > len) hi = len;
                    if (lo > hi) lo = hi;
                    for (ptrdiff_t t = 0; t < lo; t++) o[t] = 0.0f;
                    const float *restrict src = in + ix0 + lo * sw;
                    float *restrict dst = o + lo;
                    const ptrdiff_t run = hi - lo;
                    if (sw == 2) {
                        for (ptrdiff_t t = 0; t < run; t++) dst[t] = src[2 * t];
                    } else {
                        for (ptrdiff_t t = 0; t < run; t++) dst[t] = src[t * sw];
                    }
                    for (ptrdiff_t t = hi; t < len; t++) o[t] = 0.0f;
                }
            }
            for (ptrdiff_t j = wdt; j < nr; j++) d[j] = 0.0f;
        }
    }
}

// Packs op(A)[ic..ic+mc, pc..pc+kc] into MR-tall panels: panel holds [kc][mr], zero-padded.
static void pack_a(int trans_a, const float *a, ptrdiff_t lda, ptrdiff_t ic, ptrdiff_t mc, ptrdiff_t pc, ptrdiff_t kc,
                   int mr, float *ap) {
    for (ptrdiff_t i0 = 0; i0 < mc; i0 += mr) {
        ptrdiff_t h = mc - i0 < mr ? mc - i0 : mr;
        float *dst = ap + i0 * kc;
        if (trans_a) {
            for (ptrdiff_t p = 0; p < kc; p++) {
                const float *src = a + (pc + p) * lda + ic + i0;
                memcpy(dst + p * mr, src, (size_t)h * sizeof(float));
                for (ptrdiff_t i = h; i < mr; i++) dst[p * mr + i] = 0.0f;
            }
        } else {
            for (ptrdiff_t i = 0; i < mr; i++) {
                if (i < h) {
                    const float *src = a + (ic + i0 + i) * lda + pc;
                    for (ptrdiff_t p = 0; p < kc; p++) dst[p * mr + i] = src[p];
                } else {
                    for (ptrdiff_t p = 0; p < kc; p++) dst[p * mr + i] = 0.0f;
                }
            }
        }
    }
}

static void *aligned(size_t bytes) {
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) return NULL;
    return p;
}

// Packing buffers live per thread and only grow, so small GEMMs (convolutions of small images
// run thousands of times) do not pay an allocation each.
static __thread float *tls_bp, *tls_ap;
static __thread size_t tls_bp_cap, tls_ap_cap;

static float *buffer(float **buf, size_t *cap, size_t floats) {
    if (*cap < floats) {
        free(*buf);
        *buf = aligned(floats * sizeof(float));
        if (!*buf) abort();
        *cap = floats;
    }
    return *buf;
}

// A prepacked operand and the first row (A) or column (B) this call uses (a multiple of MR / NR).
typedef struct {
    const lgap_packed *p;
    ptrdiff_t first;
} packed_view_t;

static void gemm_core(int trans_a, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha, const float *a, ptrdiff_t lda,
                      packed_view_t pa, const bsource_t *src, packed_view_t pb, float beta, float *c, ptrdiff_t ldc);

void lgap_sgemm(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha,
                const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb, float beta,
                float *c, ptrdiff_t ldc) {
    bsource_t src = {0};
    src.trans_b = trans_b;
    src.b = b;
    src.ldb = ldb;
    packed_view_t none = {NULL, 0};
    gemm_core(trans_a, m, n, k, alpha, a, lda, none, &src, none, beta, c, ldc);
}

void lgap_conv2d_image(const float *weight, const lgap_packed *packed_weight, ptrdiff_t cout, const float *x, ptrdiff_t cin,
                       ptrdiff_t h, ptrdiff_t w, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t ph, ptrdiff_t pw,
                       ptrdiff_t ho, ptrdiff_t wo, ptrdiff_t col0, ptrdiff_t cols, float *out) {
    bsource_t src = {0};
    src.conv = 1;
    src.x = x;
    src.h = h; src.w = w; src.kh = kh; src.kw = kw; src.sh = sh; src.sw = sw; src.ph = ph; src.pw = pw; src.wo = wo;
    src.col0 = col0;
    src.plane = ho * wo;
    src.in_size = cin * h * w;
    // out: [cout, ho·wo]; this call fills columns col0..col0+cols of every row.
    packed_view_t pa = {packed_weight, 0}, none = {NULL, 0};
    gemm_core(0, cout, cols, cin * kh * kw, 1.0f, weight, cin * kh * kw, pa, &src, none, 0.0f, out + col0, ho * wo);
}

void lgap_conv2d_batch(const float *weight, const lgap_packed *packed_weight, ptrdiff_t cout, const float *x, ptrdiff_t cin,
                       ptrdiff_t h, ptrdiff_t w, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t ph, ptrdiff_t pw,
                       ptrdiff_t ho, ptrdiff_t wo, ptrdiff_t images, float *out) {
    bsource_t src = {0};
    src.conv = 1;
    src.x = x;
    src.h = h; src.w = w; src.kh = kh; src.kw = kw; src.sh = sh; src.sw = sw; src.ph = ph; src.pw = pw; src.wo = wo;
    src.plane = ho * wo;
    src.in_size = cin * h * w;
    ptrdiff_t cols = images * ho * wo;
    packed_view_t pa = {packed_weight, 0}, none = {NULL, 0};
    gemm_core(0, cout, cols, cin * kh * kw, 1.0f, weight, cin * kh * kw, pa, &src, none, 0.0f, out, cols);
}

// Prepacked operands (lgap_pack_a / lgap_pack_b): for each KC-deep slice of K, the MR- (or NR-)
// wide panels of the whole M (or N) range, zero-padded; the slice starting at K row pc begins at
// pc·padded, and within it the panel of rows (columns) from r begins at r·kc.

void lgap_packed_a_geometry(ptrdiff_t m, ptrdiff_t k, int *mr, ptrdiff_t *kb, ptrdiff_t *padded) {
    impl_t im = get_impl();
    *mr = im.mr;
    *kb = kc_block(k);
    *padded = round_up(m, im.mr);
}

lgap_packed *lgap_packed_a_empty(ptrdiff_t m, ptrdiff_t k) {
    impl_t im = get_impl();
    lgap_packed *p = calloc(1, sizeof(lgap_packed));
    if (!p) abort();
    p->rows = m; p->cols = k; p->side = 0;
    ptrdiff_t padded = round_up(m, im.mr);
    p->data = aligned((size_t)padded * (size_t)(k > 0 ? k : 1) * sizeof(float));
    if (!p->data) abort();
    if (padded > m) {
        // Zero the last panel of every K slice (its rows past m are padding).
        const ptrdiff_t kb = kc_block(k), last = padded - im.mr;
        for (ptrdiff_t pc = 0; pc < k; pc += kb) {
            ptrdiff_t kc = k - pc < kb ? k - pc : kb;
            memset(p->data + pc * padded + last * kc, 0, (size_t)(im.mr * kc) * sizeof(float));
        }
    }
    return p;
}

lgap_packed *lgap_pack_a(int trans_a, ptrdiff_t m, ptrdiff_t k, const float *a, ptrdiff_t lda) {
    impl_t im = get_impl();
    lgap_packed *p = lgap_packed_a_empty(m, k);
    const ptrdiff_t padded = round_up(m, im.mr), kb = kc_block(k);
    for (ptrdiff_t pc = 0; pc < k; pc += kb) {
        ptrdiff_t kc = k - pc < kb ? k - pc : kb;
        pack_a(trans_a, a, lda, 0, m, pc, kc, im.mr, p->data + pc * padded);
    }
    return p;
}

lgap_packed *lgap_pack_b(int trans_b, ptrdiff_t k, ptrdiff_t n, const float *b, ptrdiff_t ldb) {
    impl_t im = get_impl();
    lgap_packed *p = calloc(1, sizeof(lgap_packed));
    if (!p) abort();
    p->rows = k; p->cols = n; p->side = 1;
    ptrdiff_t padded = round_up(n, im.nr);
    p->data = aligned((size_t)padded * (size_t)(k > 0 ? k : 1) * sizeof(float));
    if (!p->data) abort();
    const ptrdiff_t kb = kc_block(k);
    for (ptrdiff_t pc = 0; pc < k; pc += kb) {
        ptrdiff_t kc = k - pc < kb ? k - pc : kb;
        pack_b(trans_b, b, ldb, pc, kc, 0, n, im.nr, p->data + pc * padded);
    }
    return p;
}

void lgap_packed_free(lgap_packed *p) {
    if (!p) return;
    free(p->data);
    free(p);
}

void lgap_sgemm_packed(const lgap_packed *pa, int trans_a, const float *a, ptrdiff_t lda,
                       const lgap_packed *pb, int trans_b, const float *b, ptrdiff_t ldb,
                       ptrdiff_t row0, ptrdiff_t m, ptrdiff_t col0, ptrdiff_t n, ptrdiff_t k, float alpha, float beta,
                       float *c, ptrdiff_t ldc) {
    bsource_t src = {0};
    src.trans_b = trans_b;
    src.b = b;
    src.ldb = ldb;
    packed_view_t va = {pa, row0}, vb = {pb, col0};
    gemm_core(trans_a, m, n, k, alpha, a, lda, va, &src, vb, beta, c, ldc);
}

static void gemm_core(int trans_a, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha, const float *a, ptrdiff_t lda,
                      packed_view_t pa, const bsource_t *src, packed_view_t pb, float beta, float *c, ptrdiff_t ldc) {
    const int trans_b = src->trans_b;
    const float *b = src->b;
    const ptrdiff_t ldb = src->ldb;
    if (m <= 0 || n <= 0) return;
    if (k <= 0 || alpha == 0.0f) {
        for (ptrdiff_t i = 0; i < m; i++)
            for (ptrdiff_t j = 0; j < n; j++) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
        return;
    }
    impl_t im = get_impl();
    const int mr = im.mr, nr = im.nr, mcmax = im.mc;
    ptrdiff_t ncmax = n < NC ? ((n + nr - 1) / nr) * nr : NC;
    const ptrdiff_t kb = kc_block(k);
    ptrdiff_t kcmax = k < kb ? k : kb;
    float *bp = buffer(&tls_bp, &tls_bp_cap, (size_t)kcmax * ncmax);
    float *ap = buffer(&tls_ap, &tls_ap_cap, (size_t)kcmax * (mcmax + mr));
    float tile[8 * 32];
    for (ptrdiff_t jc = 0; jc < n; jc += NC) {
        ptrdiff_t nc = n - jc < NC ? n - jc : NC;
        for (ptrdiff_t pc = 0; pc < k; pc += kb) {
            ptrdiff_t kc = k - pc < kb ? k - pc : kb;
            // The first K slice scales C by beta; later slices accumulate.
            float bet = pc == 0 ? beta : 1.0f;
            const float *bpanel = bp;
            if (pb.p) bpanel = pb.p->data + pc * round_up(pb.p->cols, nr) + (pb.first + jc) * kc;
            else if (src->conv) pack_b_conv(src, pc, kc, src->col0 + jc, nc, nr, bp);
            else pack_b(trans_b, b, ldb, pc, kc, jc, nc, nr, bp);
            for (ptrdiff_t ic = 0; ic < m; ic += mcmax) {
                ptrdiff_t mc = m - ic < mcmax ? m - ic : mcmax;
                const float *apanel = ap;
                if (pa.p) apanel = pa.p->data + pc * round_up(pa.p->rows, mr) + (pa.first + ic) * kc;
                else pack_a(trans_a, a, lda, ic, mc, pc, kc, mr, ap);
                for (ptrdiff_t jr = 0; jr < nc; jr += nr) {
                    ptrdiff_t w = nc - jr < nr ? nc - jr : nr;
                    const int narrow = im.half && w <= nr / 2;
                    const kernel_fn kern = narrow ? im.half : im.kernel;
                    const ptrdiff_t kw = narrow ? nr / 2 : nr;  // columns the kernel writes
                    for (ptrdiff_t ir = 0; ir < mc; ir += mr) {
                        ptrdiff_t h = mc - ir < mr ? mc - ir : mr;
                        float *cij = c + (ic + ir) * ldc + jc + jr;
                        if (h == mr && w == kw) {
                            // Full tile: the kernel scales and accumulates into C itself.
                            kern(kc, apanel + ir * kc, bpanel + jr * kc, cij, ldc, alpha, bet);
                            continue;
                        }
                        // Edge tile: compute into a buffer, then combine the valid part.
                        kern(kc, apanel + ir * kc, bpanel + jr * kc, tile, nr, 1.0f, 0.0f);
                        for (ptrdiff_t i = 0; i < h; i++) {
                            float *crow = cij + i * ldc;
                            const float *trow = tile + i * nr;
                            if (bet == 0.0f) {
                                if (alpha == 1.0f) memcpy(crow, trow, (size_t)w * sizeof(float));
                                else for (ptrdiff_t j = 0; j < w; j++) crow[j] = alpha * trow[j];
                            } else if (bet == 1.0f && alpha == 1.0f) {
                                for (ptrdiff_t j = 0; j < w; j++) crow[j] += trow[j];
                            } else {
                                for (ptrdiff_t j = 0; j < w; j++) crow[j] = alpha * trow[j] + bet * crow[j];
                            }
                        }
                    }
                }
            }
        }
    }
}

void lgap_sgemm_tile(int *mr, int *nr) {
    impl_t im = get_impl();
    *mr = im.mr;
    *nr = im.nr;
}
