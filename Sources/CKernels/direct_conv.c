// Direct convolution (stride 1) for AVX-512: no column matrix and no packing of the image.
//
// The output is computed on the padded input's row grid: output position t = oy·Wp + ox reads
// input t + ky·Wp + kx of each channel plane, so a tile of 32 consecutive positions is two 16-wide
// loads per (channel, ky, kx) and the 3×3 taps are just offsets. Positions with ox ≥ wo (the
// padding columns) are computed and dropped. Weights are prepacked as [cout/8][cin][kh][kw][8] so
// the 8 output channels' weights for one tap are adjacent broadcasts. Tiles: 8 channels × 32
// positions (16 zmm accumulators), as the GEMM micro-kernel.
#include "CKernels.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

int lgap_direct_conv_available(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

void lgap_direct_conv_pack(const float *w, ptrdiff_t cout, ptrdiff_t cin, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t block,
                           float *out) {
    ptrdiff_t blocks = (cout + block - 1) / block, taps = kh * kw;
    for (ptrdiff_t cb = 0; cb < blocks; cb++)
        for (ptrdiff_t ci = 0; ci < cin; ci++)
            for (ptrdiff_t t = 0; t < taps; t++)
                for (ptrdiff_t i = 0; i < block; i++) {
                    ptrdiff_t co = cb * block + i;
                    out[((cb * cin + ci) * taps + t) * block + i] = co < cout ? w[(co * cin + ci) * taps + t] : 0.0f;
                }
}

// Padded row length. Rows share their padding columns: row y's right padding is row y+1's left
// padding (a read past a row's end lands on the next row's leading zeros), so a row is w + pw long
// instead of w + 2·pw — for an 8×8 CIFAR map that is 9 grid columns per 8 outputs, not 10. It needs
// pw ≤ kw − 1 (output columns never outrun the row); wider padding keeps both sides.
static ptrdiff_t padded_width(ptrdiff_t w, ptrdiff_t pw, ptrdiff_t kw) { return pw <= kw - 1 ? w + pw : w + 2 * pw; }
// Channel planes sit back to back: a tile's reads past its plane's end (positions that are dropped)
// land in the next plane, which is harmless, and only the last plane needs slack behind it. Per-plane
// slack made an 8×8 map's 64 planes 70% larger, pushing input + weights out of L1.

ptrdiff_t lgap_direct_conv_padded_size(ptrdiff_t cin, ptrdiff_t h, ptrdiff_t w, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t ph,
                                       ptrdiff_t pw) {
    ptrdiff_t hp = h + 2 * ph, wp = padded_width(w, pw, kw);
    (void)kh;
    return cin * hp * wp + 64;
}

#if defined(__x86_64__)
__attribute__((target("avx512f"), always_inline))
static inline void tile_8x32(const float *xp, ptrdiff_t plane, ptrdiff_t wp, ptrdiff_t cin, ptrdiff_t kh, ptrdiff_t kw,
                      const float *wk, float *acc_out) {
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
    __m512 c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00, c61 = c00, c70 = c00, c71 = c00;
    for (ptrdiff_t ci = 0; ci < cin; ci++) {
        const float *base = xp + ci * plane;
        for (ptrdiff_t ky = 0; ky < kh; ky++) {
            const float *row = base + ky * wp;
            for (ptrdiff_t kx = 0; kx < kw; kx++) {
                __m512 b0 = _mm512_loadu_ps(row + kx), b1 = _mm512_loadu_ps(row + kx + 16);
                __m512 a;
                a = _mm512_set1_ps(wk[0]); c00 = _mm512_fmadd_ps(a, b0, c00); c01 = _mm512_fmadd_ps(a, b1, c01);
                a = _mm512_set1_ps(wk[1]); c10 = _mm512_fmadd_ps(a, b0, c10); c11 = _mm512_fmadd_ps(a, b1, c11);
                a = _mm512_set1_ps(wk[2]); c20 = _mm512_fmadd_ps(a, b0, c20); c21 = _mm512_fmadd_ps(a, b1, c21);
                a = _mm512_set1_ps(wk[3]); c30 = _mm512_fmadd_ps(a, b0, c30); c31 = _mm512_fmadd_ps(a, b1, c31);
                a = _mm512_set1_ps(wk[4]); c40 = _mm512_fmadd_ps(a, b0, c40); c41 = _mm512_fmadd_ps(a, b1, c41);
                a = _mm512_set1_ps(wk[5]); c50 = _mm512_fmadd_ps(a, b0, c50); c51 = _mm512_fmadd_ps(a, b1, c51);
                a = _mm512_set1_ps(wk[6]); c60 = _mm512_fmadd_ps(a, b0, c60); c61 = _mm512_fmadd_ps(a, b1, c61);
                a = _mm512_set1_ps(wk[7]); c70 = _mm512_fmadd_ps(a, b0, c70); c71 = _mm512_fmadd_ps(a, b1, c71);
                wk += 8;
            }
        }
    }
    _mm512_storeu_ps(acc_out + 0 * 32, c00); _mm512_storeu_ps(acc_out + 0 * 32 + 16, c01);
    _mm512_storeu_ps(acc_out + 1 * 32, c10); _mm512_storeu_ps(acc_out + 1 * 32 + 16, c11);
    _mm512_storeu_ps(acc_out + 2 * 32, c20); _mm512_storeu_ps(acc_out + 2 * 32 + 16, c21);
    _mm512_storeu_ps(acc_out + 3 * 32, c30); _mm512_storeu_ps(acc_out + 3 * 32 + 16, c31);
    _mm512_storeu_ps(acc_out + 4 * 32, c40); _mm512_storeu_ps(acc_out + 4 * 32 + 16, c41);
    _mm512_storeu_ps(acc_out + 5 * 32, c50); _mm512_storeu_ps(acc_out + 5 * 32 + 16, c51);
    _mm512_storeu_ps(acc_out + 6 * 32, c60); _mm512_storeu_ps(acc_out + 6 * 32 + 16, c61);
    _mm512_storeu_ps(acc_out + 7 * 32, c70); _mm512_storeu_ps(acc_out + 7 * 32 + 16, c71);
}

// The 8 × 16 tile for a grid's last positions when at most 16 remain (small planes: an 8×8 map's
// 72-position grid is two 32-tiles and one 16-tile instead of three 32-tiles).
__attribute__((target("avx512f"), always_inline))
static inline void tile_8x16(const float *xp, ptrdiff_t plane, ptrdiff_t wp, ptrdiff_t cin, ptrdiff_t kh, ptrdiff_t kw,
                             const float *wk, float *acc_out) {
    __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0;
    for (ptrdiff_t ci = 0; ci < cin; ci++) {
        const float *base = xp + ci * plane;
        for (ptrdiff_t ky = 0; ky < kh; ky++) {
            const float *row = base + ky * wp;
            for (ptrdiff_t kx = 0; kx < kw; kx++) {
                __m512 b0 = _mm512_loadu_ps(row + kx);
                c0 = _mm512_fmadd_ps(_mm512_set1_ps(wk[0]), b0, c0);
                c1 = _mm512_fmadd_ps(_mm512_set1_ps(wk[1]), b0, c1);
                c2 = _mm512_fmadd_ps(_mm512_set1_ps(wk[2]), b0, c2);
                c3 = _mm512_fmadd_ps(_mm512_set1_ps(wk[3]), b0, c3);
                c4 = _mm512_fmadd_ps(_mm512_set1_ps(wk[4]), b0, c4);
                c5 = _mm512_fmadd_ps(_mm512_set1_ps(wk[5]), b0, c5);
                c6 = _mm512_fmadd_ps(_mm512_set1_ps(wk[6]), b0, c6);
                c7 = _mm512_fmadd_ps(_mm512_set1_ps(wk[7]), b0, c7);
                wk += 8;
            }
        }
    }
    _mm512_storeu_ps(acc_out + 0 * 32, c0); _mm512_storeu_ps(acc_out + 1 * 32, c1);
    _mm512_storeu_ps(acc_out + 2 * 32, c2); _mm512_storeu_ps(acc_out + 3 * 32, c3);
    _mm512_storeu_ps(acc_out + 4 * 32, c4); _mm512_storeu_ps(acc_out + 5 * 32, c5);
    _mm512_storeu_ps(acc_out + 6 * 32, c6); _mm512_storeu_ps(acc_out + 7 * 32, c7);
}

// One tile: 3×3 kernels get their own copy with the tap loops unrolled at compile time.
__attribute__((target("avx512f")))
static void tile(const float *xp, ptrdiff_t plane, ptrdiff_t wp, ptrdiff_t cin, ptrdiff_t kh, ptrdiff_t kw,
                 const float *wk, ptrdiff_t positions, float *acc_out) {
    if (positions <= 16) {
        if (kh == 3 && kw == 3) tile_8x16(xp, plane, wp, cin, 3, 3, wk, acc_out);
        else tile_8x16(xp, plane, wp, cin, kh, kw, wk, acc_out);
    } else {
        if (kh == 3 && kw == 3) tile_8x32(xp, plane, wp, cin, 3, 3, wk, acc_out);
        else tile_8x32(xp, plane, wp, cin, kh, kw, wk, acc_out);
    }
}
#endif

#if defined(__x86_64__)
// Channel-vector tile for small maps: 8 consecutive output pixels of one row × 32 output channels
// (16 zmm accumulators), each pixel's input broadcast against two 16-channel weight vectors. Unlike
// the position-vector tile above it computes no padding columns (an 8×8 map's grid wastes 16 of 80
// positions there). Sums run over (ci, ky, kx) in the same order as tile_8x32, so both kernels give
// the same bits. acc_out: [8 pixels][32 channels].
__attribute__((target("avx512f"), always_inline))
static inline void tile_cv(const float *xp, ptrdiff_t plane, ptrdiff_t wp, ptrdiff_t cin, ptrdiff_t kh, ptrdiff_t kw,
                           const float *wk, float *acc_out) {
    __m512 a00 = _mm512_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
    __m512 a40 = a00, a41 = a00, a50 = a00, a51 = a00, a60 = a00, a61 = a00, a70 = a00, a71 = a00;
    for (ptrdiff_t ci = 0; ci < cin; ci++) {
        const float *base = xp + ci * plane;
        for (ptrdiff_t ky = 0; ky < kh; ky++) {
            const float *row = base + ky * wp;
            for (ptrdiff_t kx = 0; kx < kw; kx++) {
                const float *r = row + kx;
                __m512 w0 = _mm512_loadu_ps(wk), w1 = _mm512_loadu_ps(wk + 16);
                __m512 x;
                x = _mm512_set1_ps(r[0]); a00 = _mm512_fmadd_ps(w0, x, a00); a01 = _mm512_fmadd_ps(w1, x, a01);
                x = _mm512_set1_ps(r[1]); a10 = _mm512_fmadd_ps(w0, x, a10); a11 = _mm512_fmadd_ps(w1, x, a11);
                x = _mm512_set1_ps(r[2]); a20 = _mm512_fmadd_ps(w0, x, a20); a21 = _mm512_fmadd_ps(w1, x, a21);
                x = _mm512_set1_ps(r[3]); a30 = _mm512_fmadd_ps(w0, x, a30); a31 = _mm512_fmadd_ps(w1, x, a31);
                x = _mm512_set1_ps(r[4]); a40 = _mm512_fmadd_ps(w0, x, a40); a41 = _mm512_fmadd_ps(w1, x, a41);
                x = _mm512_set1_ps(r[5]); a50 = _mm512_fmadd_ps(w0, x, a50); a51 = _mm512_fmadd_ps(w1, x, a51);
                x = _mm512_set1_ps(r[6]); a60 = _mm512_fmadd_ps(w0, x, a60); a61 = _mm512_fmadd_ps(w1, x, a61);
                x = _mm512_set1_ps(r[7]); a70 = _mm512_fmadd_ps(w0, x, a70); a71 = _mm512_fmadd_ps(w1, x, a71);
                wk += 32;
            }
        }
    }
    _mm512_storeu_ps(acc_out + 0 * 32, a00); _mm512_storeu_ps(acc_out + 0 * 32 + 16, a01);
    _mm512_storeu_ps(acc_out + 1 * 32, a10); _mm512_storeu_ps(acc_out + 1 * 32 + 16, a11);
    _mm512_storeu_ps(acc_out + 2 * 32, a20); _mm512_storeu_ps(acc_out + 2 * 32 + 16, a21);
    _mm512_storeu_ps(acc_out + 3 * 32, a30); _mm512_storeu_ps(acc_out + 3 * 32 + 16, a31);
    _mm512_storeu_ps(acc_out + 4 * 32, a40); _mm512_storeu_ps(acc_out + 4 * 32 + 16, a41);
    _mm512_storeu_ps(acc_out + 5 * 32, a50); _mm512_storeu_ps(acc_out + 5 * 32 + 16, a51);
    _mm512_storeu_ps(acc_out + 6 * 32, a60); _mm512_storeu_ps(acc_out + 6 * 32 + 16, a61);
    _mm512_storeu_ps(acc_out + 7 * 32, a70); _mm512_storeu_ps(acc_out + 7 * 32 + 16, a71);
}

__attribute__((target("avx512f")))
static void tile_cv_any(const float *xp, ptrdiff_t plane, ptrdiff_t wp, ptrdiff_t cin, ptrdiff_t kh, ptrdiff_t kw,
                        const float *wk, float *acc_out) {
    if (kh == 3 && kw == 3) tile_cv(xp, plane, wp, cin, 3, 3, wk, acc_out);
    else tile_cv(xp, plane, wp, cin, kh, kw, wk, acc_out);
}
#endif

void lgap_direct_conv_pad(const float *x, ptrdiff_t cin, ptrdiff_t h, ptrdiff_t w, ptrdiff_t kw, ptrdiff_t ph, ptrdiff_t pw,
                          float *xp) {
    ptrdiff_t hp = h + 2 * ph, wp = padded_width(w, pw, kw), plane = hp * wp;
    memset(xp, 0, (size_t)(cin * plane + 64) * sizeof(float));
    for (ptrdiff_t c = 0; c < cin; c++)
        for (ptrdiff_t y = 0; y < h; y++)
            memcpy(xp + c * plane + (y + ph) * wp + pw, x + (c * h + y) * w, (size_t)w * sizeof(float));
}

void lgap_direct_conv(const float *xp, const float *wpk, const float *bias, ptrdiff_t cout, ptrdiff_t cin, ptrdiff_t h,
                      ptrdiff_t w, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t block0, ptrdiff_t block1,
                      float *out) {
#if defined(__x86_64__)
    ptrdiff_t hp = h + 2 * ph, wp = padded_width(w, pw, kw), plane = hp * wp;
    ptrdiff_t ho = hp - kh + 1, wo = w + 2 * pw - kw + 1;
    ptrdiff_t grid = ho * wp;
    float acc[8 * 32];
    // Bands of grid positions sized so the input rows a band reads (cin × (rows + kh) × wp floats)
    // stay in L2 while every channel block passes over them; weights of one block stay in L1.
    ptrdiff_t band_rows = (256 * 1024 / 4) / (cin * wp > 0 ? cin * wp : 1) - kh;
    if (band_rows < 1) band_rows = 1;
    ptrdiff_t band = band_rows * wp;
    band = (band + 31) / 32 * 32;
    for (ptrdiff_t b0 = 0; b0 < grid; b0 += band) {
    ptrdiff_t b1 = grid - b0 < band ? grid : b0 + band;
    for (ptrdiff_t cb = block0; cb < block1; cb++) {
        const float *wk = wpk + cb * cin * kh * kw * 8;
        for (ptrdiff_t t0 = b0; t0 < b1; t0 += 32) {
            ptrdiff_t tn = grid - t0 < 32 ? grid - t0 : 32;
            tile(xp + t0, plane, wp, cin, kh, kw, wk, tn, acc);
            // Copy the tile's valid positions row run by row run (no per-element division).
            ptrdiff_t oy0 = t0 / wp, ox0 = t0 % wp;
            for (int i = 0; i < 8; i++) {
                ptrdiff_t co = cb * 8 + i;
                if (co >= cout) break;
                float b = bias ? bias[co] : 0.0f;
                float *dst = out + co * ho * wo;
                const float *src = acc + i * 32;
                ptrdiff_t j = 0, oy = oy0, ox = ox0;
                while (j < tn) {
                    ptrdiff_t run = wp - ox < tn - j ? wp - ox : tn - j;   // positions left on this grid row
                    ptrdiff_t valid = ox < wo ? (wo - ox < run ? wo - ox : run) : 0;
                    float *d = dst + oy * wo + ox;
                    for (ptrdiff_t q = 0; q < valid; q++) d[q] = src[j + q] + b;
                    j += run;
                    oy += 1;
                    ox = 0;
                }
            }
        }
    }
    }
#else
    (void)xp; (void)wpk; (void)bias; (void)cout; (void)cin; (void)h; (void)w; (void)kh; (void)kw; (void)ph; (void)pw;
    (void)block0; (void)block1; (void)out;
    abort();
#endif
}

void lgap_direct_conv_cv(const float *xp, const float *wpk32, const float *bias, ptrdiff_t cout, ptrdiff_t cin, ptrdiff_t h,
                         ptrdiff_t w, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t block0, ptrdiff_t block1,
                         float *out) {
#if defined(__x86_64__)
    ptrdiff_t hp = h + 2 * ph, wp = padded_width(w, pw, kw), plane = hp * wp;
    ptrdiff_t ho = hp - kh + 1, wo = w + 2 * pw - kw + 1;
    float acc[8 * 32];
    for (ptrdiff_t cb = block0; cb < block1; cb++) {
        const float *wk = wpk32 + cb * cin * kh * kw * 32;
        const ptrdiff_t channels = cout - cb * 32 < 32 ? cout - cb * 32 : 32;
        for (ptrdiff_t oy = 0; oy < ho; oy++) {
            for (ptrdiff_t ox0 = 0; ox0 < wo; ox0 += 8) {
                // A row's last tile may run past wo: those pixels read the next row's (or plane's,
                // or the 64-float slack's) values and are dropped.
                tile_cv_any(xp + oy * wp + ox0, plane, wp, cin, kh, kw, wk, acc);
                const ptrdiff_t n = wo - ox0 < 8 ? wo - ox0 : 8;
                for (ptrdiff_t i = 0; i < channels; i++) {
                    const ptrdiff_t co = cb * 32 + i;
                    const float b = bias ? bias[co] : 0.0f;
                    float *dst = out + (co * ho + oy) * wo + ox0;
                    for (ptrdiff_t p = 0; p < n; p++) dst[p] = acc[p * 32 + i] + b;
                }
            }
        }
    }
#else
    (void)xp; (void)wpk32; (void)bias; (void)cout; (void)cin; (void)h; (void)w; (void)kh; (void)kw; (void)ph; (void)pw;
    (void)block0; (void)block1; (void)out;
    abort();
#endif
}
