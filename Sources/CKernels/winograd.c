// Winograd F(2×2, 3×3) convolution (Lavin & Gray, "Fast Algorithms for Convolutional Neural
// Networks", 2016): each 2×2 output tile is A^T [(G g G^T) ⊙ (B^T d B)] A for its 4×4 input patch d,
// so a 3×3 stride-1 layer becomes 16 independent GEMMs, M_ξ[cout × tiles] = U_ξ[cout × cin] ·
// V_ξ[cin × tiles], with 2.25× fewer multiplications than the direct form. F(2,3)'s transforms only
// add, subtract and halve, so its rounding stays at the level of the direct sum (F(4,3) would save
// more but multiplies the error by its larger constants).
//
// Work is done in blocks of whole tile rows (one tile row = 2 output rows of one image): transform
// the block's input patches into V, run the 16 GEMMs into M, transform M back into the output.
// A block's V and M are sized by the caller to stay in cache; blocks are independent, so callers
// split them across threads. A block can also be cut by output channel (ko0..<ko1): when a batch has
// too few tiles to give every thread a useful share (a batch-1 WideResNet's 8×8 layers: 16 tiles),
// each thread transforms the same input and multiplies by its own rows of U, so U is read once
// in all instead of once per thread and the GEMMs keep their full width.
#include "CKernels.h"

#include <string.h>

#if defined(__x86_64__) && defined(__linux__)
#define LGAP_CLONES __attribute__((target_clones("avx512f", "arch=haswell", "default")))
#else
#define LGAP_CLONES
#endif

// U = G g G^T with G = [[1,0,0], [½,½,½], [½,−½,½], [0,0,1]], written straight into the 16 packed
// GEMM operands (lgap_packed_a_empty), for output channels ko0..<ko1: a bare conv2d call transforms
// its weights every time, and packing a row-major U afterwards was another pass over 16× the weights.
// Rows go in groups of the kernel's MR so each write fills MR consecutive floats of a panel.
LGAP_CLONES
void lgap_winograd_weights_packed(const float *w, ptrdiff_t cout, ptrdiff_t cin, ptrdiff_t ko0, ptrdiff_t ko1,
                                  float *const *u) {
    int mr;
    ptrdiff_t kb, padded;
    lgap_packed_a_geometry(cout, cin, &mr, &kb, &padded);
    for (ptrdiff_t g = ko0 - ko0 % mr; g < ko1; g += mr) {
        for (ptrdiff_t ci = 0; ci < cin; ci++) {
            const ptrdiff_t pc = ci - ci % kb, kc = cin - pc < kb ? cin - pc : kb;
            const ptrdiff_t at = pc * padded + g * kc + (ci - pc) * mr;
            for (ptrdiff_t r = 0; r < mr; r++) {
                const ptrdiff_t ko = g + r;
                if (ko < ko0 || ko >= ko1) continue;
                const float *g9 = w + (ko * cin + ci) * 9;
                float t[4][3];
                for (int j = 0; j < 3; j++) {
                    float g0 = g9[j], g1 = g9[3 + j], g2 = g9[6 + j];
                    t[0][j] = g0;
                    t[1][j] = 0.5f * (g0 + g1 + g2);
                    t[2][j] = 0.5f * (g0 - g1 + g2);
                    t[3][j] = g2;
                }
                for (int a = 0; a < 4; a++) {
                    u[a * 4 + 0][at + r] = t[a][0];
                    u[a * 4 + 1][at + r] = 0.5f * (t[a][0] + t[a][1] + t[a][2]);
                    u[a * 4 + 2][at + r] = 0.5f * (t[a][0] - t[a][1] + t[a][2]);
                    u[a * 4 + 3][at + r] = t[a][2];
                }
            }
        }
    }
}

static ptrdiff_t padded_width(ptrdiff_t tiles_x) { return 2 * tiles_x + 2; }

ptrdiff_t lgap_winograd_scratch_size(ptrdiff_t cin, ptrdiff_t cout, ptrdiff_t wo, ptrdiff_t rows) {
    ptrdiff_t tiles_x = (wo + 1) / 2, tb = rows * tiles_x;
    return 16 * (cin + cout) * tb + 4 * padded_width(tiles_x) + 4 * tiles_x + 64;
}

// V[ξ][c][j] for the block's tiles j: B^T d B with B^T = [[1,0,−1,0], [0,1,1,0], [0,−1,1,0], [0,1,0,−1]],
// applied along each patch row, then down the columns.
static inline void input_transform(const float *x, ptrdiff_t cin, ptrdiff_t h, ptrdiff_t w, ptrdiff_t pad,
                                   ptrdiff_t tiles_x, ptrdiff_t tiles_y, ptrdiff_t row0, ptrdiff_t rows,
                                   float *v, float *buf) {
    const ptrdiff_t wp = padded_width(tiles_x), tb = rows * tiles_x;
    for (ptrdiff_t rr = 0; rr < rows; rr++) {
        ptrdiff_t r = row0 + rr, img = r / tiles_y, ty = r % tiles_y;
        for (ptrdiff_t ci = 0; ci < cin; ci++) {
            const float *plane = x + (img * cin + ci) * h * w;
            // The patch rows of this tile row, zero-padded to the tile grid.
            for (int q = 0; q < 4; q++) {
                float *dst = buf + q * wp;
                ptrdiff_t iy = 2 * ty + q - pad;
                memset(dst, 0, (size_t)wp * sizeof(float));
                if (iy >= 0 && iy < h) {
                    ptrdiff_t n = w < wp - pad ? w : wp - pad;
                    memcpy(dst + pad, plane + iy * w, (size_t)n * sizeof(float));
                }
            }
            const float *restrict d0 = buf, *restrict d1 = buf + wp, *restrict d2 = buf + 2 * wp, *restrict d3 = buf + 3 * wp;
            float *restrict vc = v + ci * tb + rr * tiles_x;
            const ptrdiff_t xs = cin * tb;  // stride between ξ planes
            // The 16 stores go to distinct ξ planes (xs apart), which the compiler cannot prove.
#pragma clang loop vectorize(assume_safety)
            for (ptrdiff_t tx = 0; tx < tiles_x; tx++) {
                const ptrdiff_t s = 2 * tx;
                // Rows: h_q = B^T d_q (q = patch row).
                float h00 = d0[s] - d0[s + 2], h01 = d0[s + 1] + d0[s + 2], h02 = d0[s + 2] - d0[s + 1], h03 = d0[s + 1] - d0[s + 3];
                float h10 = d1[s] - d1[s + 2], h11 = d1[s + 1] + d1[s + 2], h12 = d1[s + 2] - d1[s + 1], h13 = d1[s + 1] - d1[s + 3];
                float h20 = d2[s] - d2[s + 2], h21 = d2[s + 1] + d2[s + 2], h22 = d2[s + 2] - d2[s + 1], h23 = d2[s + 1] - d2[s + 3];
                float h30 = d3[s] - d3[s + 2], h31 = d3[s + 1] + d3[s + 2], h32 = d3[s + 2] - d3[s + 1], h33 = d3[s + 1] - d3[s + 3];
                // Columns: V[a][b] = Σ_q B^T[a][q] h_q[b].
                vc[0 * xs + tx] = h00 - h20;  vc[1 * xs + tx] = h01 - h21;  vc[2 * xs + tx] = h02 - h22;  vc[3 * xs + tx] = h03 - h23;
                vc[4 * xs + tx] = h10 + h20;  vc[5 * xs + tx] = h11 + h21;  vc[6 * xs + tx] = h12 + h22;  vc[7 * xs + tx] = h13 + h23;
                vc[8 * xs + tx] = h20 - h10;  vc[9 * xs + tx] = h21 - h11;  vc[10 * xs + tx] = h22 - h12; vc[11 * xs + tx] = h23 - h13;
                vc[12 * xs + tx] = h10 - h30; vc[13 * xs + tx] = h11 - h31; vc[14 * xs + tx] = h12 - h32; vc[15 * xs + tx] = h13 - h33;
            }
        }
    }
}

// out = A^T M A + bias with A^T = [[1,1,1,0], [0,1,−1,−1]]: down the columns, then along the rows.
// m holds output channels ko0..<ko1 only.
static inline void output_transform(const float *m, const float *bias, ptrdiff_t cout, ptrdiff_t ko0, ptrdiff_t ko1,
                                    ptrdiff_t ho, ptrdiff_t wo, ptrdiff_t tiles_x, ptrdiff_t tiles_y, ptrdiff_t row0,
                                    ptrdiff_t rows, float *out, float *obuf) {
    const ptrdiff_t tb = rows * tiles_x, xs = (ko1 - ko0) * tb;
    float *restrict o0 = obuf, *restrict o1 = obuf + 2 * tiles_x;
    for (ptrdiff_t rr = 0; rr < rows; rr++) {
        ptrdiff_t r = row0 + rr, img = r / tiles_y, ty = r % tiles_y;
        for (ptrdiff_t ko = ko0; ko < ko1; ko++) {
            const float *restrict mk = m + (ko - ko0) * tb + rr * tiles_x;
            const float b = bias ? bias[ko] : 0.0f;
#pragma clang loop vectorize(assume_safety)
            for (ptrdiff_t tx = 0; tx < tiles_x; tx++) {
                float m00 = mk[0 * xs + tx], m01 = mk[1 * xs + tx], m02 = mk[2 * xs + tx], m03 = mk[3 * xs + tx];
                float m10 = mk[4 * xs + tx], m11 = mk[5 * xs + tx], m12 = mk[6 * xs + tx], m13 = mk[7 * xs + tx];
                float m20 = mk[8 * xs + tx], m21 = mk[9 * xs + tx], m22 = mk[10 * xs + tx], m23 = mk[11 * xs + tx];
                float m30 = mk[12 * xs + tx], m31 = mk[13 * xs + tx], m32 = mk[14 * xs + tx], m33 = mk[15 * xs + tx];
                float t00 = m00 + m10 + m20, t01 = m01 + m11 + m21, t02 = m02 + m12 + m22, t03 = m03 + m13 + m23;
                float t10 = m10 - m20 - m30, t11 = m11 - m21 - m31, t12 = m12 - m22 - m32, t13 = m13 - m23 - m33;
                o0[2 * tx] = t00 + t01 + t02 + b;
                o0[2 * tx + 1] = t01 - t02 - t03 + b;
                o1[2 * tx] = t10 + t11 + t12 + b;
                o1[2 * tx + 1] = t11 - t12 - t13 + b;
            }
            float *dst = out + ((img * cout + ko) * ho + 2 * ty) * wo;
            memcpy(dst, o0, (size_t)wo * sizeof(float));
            if (2 * ty + 1 < ho) memcpy(dst + wo, o1, (size_t)wo * sizeof(float));
        }
    }
}

LGAP_CLONES
void lgap_winograd_conv(const lgap_packed *const *u, ptrdiff_t cout, const float *x, ptrdiff_t cin, ptrdiff_t h,
                        ptrdiff_t w, ptrdiff_t pad, ptrdiff_t ho, ptrdiff_t wo, const float *bias, ptrdiff_t row0,
                        ptrdiff_t rows, ptrdiff_t ko0, ptrdiff_t ko1, float *scratch, float *out) {
    const ptrdiff_t tiles_x = (wo + 1) / 2, tiles_y = (ho + 1) / 2, tb = rows * tiles_x, co = ko1 - ko0;
    float *v = scratch, *m = v + 16 * cin * tb;
    float *buf = m + 16 * co * tb, *obuf = buf + 4 * padded_width(tiles_x);
    input_transform(x, cin, h, w, pad, tiles_x, tiles_y, row0, rows, v, buf);
    for (int xi = 0; xi < 16; xi++)
        lgap_sgemm_packed(u[xi], 0, NULL, 0, NULL, 0, v + xi * cin * tb, tb, ko0, co, 0, tb, cin, 1.0f, 0.0f,
                          m + xi * co * tb, tb);
    output_transform(m, bias, cout, ko0, ko1, ho, wo, tiles_x, tiles_y, row0, rows, out, obuf);
}
