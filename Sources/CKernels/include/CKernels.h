// Hot inner loops of the tensor engine, in C so one binary carries AVX-512, AVX2 and baseline
// versions of each (GCC/Clang target_clones: the loader picks one for the CPU it runs on).
// All functions take contiguous float32 buffers; shapes are the caller's responsibility (Tensor checks).
#ifndef LGAP_CKERNELS_H
#define LGAP_CKERNELS_H

#include <stddef.h>

#include "lgap_gemm.h"

#ifdef __cplusplus
extern "C" {
#endif

/// Activations over n elements, x → out (out may be x: in place).
void lgap_relu(const float *x, float *out, ptrdiff_t n);
void lgap_silu(const float *x, float *out, ptrdiff_t n);
/// x * 0.5 * (1 + erf(x / sqrt 2)), erf by Abramowitz–Stegun 7.1.26 (|err| ≤ 1.5e-7, as ATen's vectorised erf).
void lgap_gelu_erf(const float *x, float *out, ptrdiff_t n);
/// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
void lgap_gelu_tanh(const float *x, float *out, ptrdiff_t n);
/// x * sigmoid(1.702 x) (OpenAI CLIP's QuickGELU).
void lgap_quick_gelu(const float *x, float *out, ptrdiff_t n);
/// out[i] = exp(x[i]), |relative error| ≤ 2 ulp over the float range.
void lgap_exp(const float *x, float *out, ptrdiff_t n);

/// Softmax over each row of a [rows, cols] matrix x → out (out may be x). Rows of all -inf give zeros.
void lgap_softmax_rows(const float *x, float *out, ptrdiff_t rows, ptrdiff_t cols);

/// y[r, :] = (x[r, :] - mean) / sqrt(var + eps) * w + b for each row of [rows, cols]; w, b may be NULL.
void lgap_layernorm_rows(const float *x, float *y, ptrdiff_t rows, ptrdiff_t cols,
                         const float *w, const float *b, float eps);

/// Group norm of one sample x: [c, hw] with `groups` groups of c/groups channels; w, b: [c] or NULL.
void lgap_groupnorm(const float *x, float *y, ptrdiff_t c, ptrdiff_t hw, ptrdiff_t groups,
                    const float *w, const float *b, float eps);

/// im2col for one image x: [c, h, w] → col: [c*kh*kw, rows*wo] covering output rows [row0, row0+rows).
void lgap_im2col(const float *x, ptrdiff_t c, ptrdiff_t h, ptrdiff_t w, ptrdiff_t kh, ptrdiff_t kw,
                 ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t wo,
                 ptrdiff_t row0, ptrdiff_t rows, float *col);

/// y = a * x + y over n elements.
void lgap_axpy(float a, const float *x, float *y, ptrdiff_t n);
/// out[i] = x[i] + y[i] (out may alias x or y).
void lgap_add(const float *x, const float *y, float *out, ptrdiff_t n);
/// Max pooling of one [h, w] plane into [ho, wo] (kernel × kernel window, stride, zero-cost padding).
void lgap_maxpool2d_plane(const float *x, ptrdiff_t h, ptrdiff_t w, ptrdiff_t kernel, ptrdiff_t stride,
                          ptrdiff_t pad, ptrdiff_t ho, ptrdiff_t wo, float *out);
/// out[i] = x[i] * y[i] (out may alias x or y).
void lgap_mul(const float *x, const float *y, float *out, ptrdiff_t n);
/// x[r, j] += bias[j] for a [rows, cols] matrix.
void lgap_add_row_bias(float *x, const float *bias, ptrdiff_t rows, ptrdiff_t cols);
/// x[c, j] += bias[c] for a [channels, inner] block.
void lgap_add_channel_bias(float *x, const float *bias, ptrdiff_t channels, ptrdiff_t inner);

/// Direct stride-1 convolution (AVX-512 only: check lgap_direct_conv_available()).
int lgap_direct_conv_available(void);
/// Weights [cout, cin, kh, kw] → [⌈cout/block⌉][cin][kh][kw][block] (zero-padded channels): block 8 for
/// lgap_direct_conv, 32 for lgap_direct_conv_cv.
void lgap_direct_conv_pack(const float *w, ptrdiff_t cout, ptrdiff_t cin, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t block,
                           float *out);
/// Floats the zero-padded input copy needs (the channel planes back to back, then 64 floats of slack).
ptrdiff_t lgap_direct_conv_padded_size(ptrdiff_t cin, ptrdiff_t h, ptrdiff_t w, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t ph,
                                       ptrdiff_t pw);
/// x: [cin, h, w] → xp: zero-padded planes of (h+2ph) rows (rows share padding columns where the
/// kernel allows: see direct_conv.c), back to back and followed by 64 zeros.
void lgap_direct_conv_pad(const float *x, ptrdiff_t cin, ptrdiff_t h, ptrdiff_t w, ptrdiff_t kw, ptrdiff_t ph, ptrdiff_t pw,
                          float *xp);
/// Output channel blocks block0..block1 (8 channels each) of one image: out [cout, ho, wo] (+ bias).
void lgap_direct_conv(const float *xp, const float *wpk, const float *bias, ptrdiff_t cout, ptrdiff_t cin, ptrdiff_t h,
                      ptrdiff_t w, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t block0, ptrdiff_t block1,
                      float *out);
/// The channel-vector form for small maps (wo ≤ 16): weights packed with block 32, 32-channel blocks
/// block0..<block1; same results as lgap_direct_conv.
void lgap_direct_conv_cv(const float *xp, const float *wpk32, const float *bias, ptrdiff_t cout, ptrdiff_t cin, ptrdiff_t h,
                         ptrdiff_t w, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t block0, ptrdiff_t block1,
                         float *out);

/// Keeps blocks up to 32 MiB on glibc's heap and stops it returning freed memory to the kernel
/// (see Tensor.swift); does nothing on other C libraries.
void lgap_tune_allocator(void);

/// Winograd F(2×2, 3×3) convolution (3×3 kernels, stride 1; see winograd.c).
/// Weights [cout, cin, 3, 3] → the 16 transformed matrices U_ξ [cout, cin] (GEMM operand A), written
/// into 16 packed operands from lgap_packed_a_empty(cout, cin) (their data pointers), output channels
/// ko0..<ko1 only (callers split the channels over threads).
void lgap_winograd_weights_packed(const float *w, ptrdiff_t cout, ptrdiff_t cin, ptrdiff_t ko0, ptrdiff_t ko1,
                                  float *const *u);
/// Floats of scratch one lgap_winograd_conv call needs for `rows` tile rows.
ptrdiff_t lgap_winograd_scratch_size(ptrdiff_t cin, ptrdiff_t cout, ptrdiff_t wo, ptrdiff_t rows);
/// Tile rows row0..row0+rows of a batch (tile row r = image r / ⌈ho/2⌉, output rows 2·(r mod ⌈ho/2⌉) + 0, 1):
/// x [n, cin, h, w] → out [n, cout, ho, wo] (+ bias), u: the 16 packed U_ξ, ho = h + 2·pad − 2.
/// Writes output channels ko0..<ko1 only (ko0 a multiple of the GEMM's MR, see lgap_sgemm_tile).
void lgap_winograd_conv(const lgap_packed *const *u, ptrdiff_t cout, const float *x, ptrdiff_t cin, ptrdiff_t h,
                        ptrdiff_t w, ptrdiff_t pad, ptrdiff_t ho, ptrdiff_t wo, const float *bias, ptrdiff_t row0,
                        ptrdiff_t rows, ptrdiff_t ko0, ptrdiff_t ko1, float *scratch, float *out);

#ifdef __cplusplus
}
#endif
#endif
