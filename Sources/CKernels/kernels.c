// Inner loops of the tensor engine. Each public loop is compiled three times (AVX-512, AVX2+FMA,
// baseline x86-64) with target_clones; the dynamic loader picks the best for the running CPU, so a
// release binary stays portable while using the wide units where they exist.
#include "CKernels.h"

#include <math.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__linux__)
#define LGAP_CLONES __attribute__((target_clones("avx512f", "arch=haswell", "default")))
#else
#define LGAP_CLONES
#endif

typedef union { float f; int32_t i; } fbits;

// Elementwise loops read index i and write index i only, so an output that is exactly the input
// (in place) is safe to vectorise; without this clang's runtime overlap check sends in-place calls
// down its scalar loop (measured: SiLU in place 10× slower, a fifth of a VAE decode).
#if defined(__clang__)
#define ELEMENTWISE _Pragma("clang loop vectorize(assume_safety)")
#else
#define ELEMENTWISE
#endif

// exp(x) as 2^n * p(r), r = x - n ln2 in [-ln2/2, ln2/2], Cephes' degree-6 polynomial (≈1 ulp).
static inline float exp_approx(float x) {
    x = x < -87.3365f ? -87.3365f : x;       // exp(-87.34) is the smallest normal float
    x = x > 88.7228f ? 88.7228f : x;
    float n = rintf(x * 1.44269504088896341f);
    float r = x - n * 0.693359375f;           // ln2 split in two for an exact reduction
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    fbits s;
    s.i = ((int32_t)n + 127) << 23;
    return p * s.f;
}

LGAP_CLONES void lgap_exp(const float *x, float *out, ptrdiff_t n) {
    ELEMENTWISE
    for (ptrdiff_t i = 0; i < n; i++) out[i] = exp_approx(x[i]);
}

// Activations read x and write out (which may be x itself): an out-of-place call makes one pass
// over memory instead of a copy followed by an in-place pass.
LGAP_CLONES void lgap_relu(const float *x, float *out, ptrdiff_t n) {
    ELEMENTWISE
    for (ptrdiff_t i = 0; i < n; i++) out[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

LGAP_CLONES void lgap_silu(const float *x, float *out, ptrdiff_t n) {
    ELEMENTWISE
    for (ptrdiff_t i = 0; i < n; i++) out[i] = x[i] / (1.0f + exp_approx(-x[i]));
}

LGAP_CLONES void lgap_quick_gelu(const float *x, float *out, ptrdiff_t n) {
    ELEMENTWISE
    for (ptrdiff_t i = 0; i < n; i++) out[i] = x[i] / (1.0f + exp_approx(-1.702f * x[i]));
}

LGAP_CLONES void lgap_gelu_erf(const float *x, float *out, ptrdiff_t n) {
    ELEMENTWISE
    for (ptrdiff_t i = 0; i < n; i++) {
        float v = x[i];
        float z = v * 0.70710678118654752f;
        float az = fabsf(z);
        float t = 1.0f / (1.0f + 0.3275911f * az);
        float poly = ((((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t - 0.284496736f) * t
                      + 0.254829592f) * t;
        float e = 1.0f - poly * exp_approx(-az * az);
        float erf = z < 0.0f ? -e : e;
        out[i] = 0.5f * v * (1.0f + erf);
    }
}

LGAP_CLONES void lgap_gelu_tanh(const float *x, float *out, ptrdiff_t n) {
    ELEMENTWISE
    for (ptrdiff_t i = 0; i < n; i++) {
        float v = x[i];
        float u = 0.79788456080286536f * (v + 0.044715f * v * v * v);
        float au = fabsf(u);
        float th = 1.0f - 2.0f / (exp_approx(2.0f * au) + 1.0f);
        th = u < 0.0f ? -th : th;
        out[i] = 0.5f * v * (1.0f + th);
    }
}

// Max and sum reductions keep 16 independent lanes so the compiler can vectorise them without
// reassociating a single accumulator (which strict IEEE semantics forbid).
enum { LANES = 16 };

static inline float row_max(const float *x, ptrdiff_t n) {
    float m[LANES];
    for (int l = 0; l < LANES; l++) m[l] = -INFINITY;
    ptrdiff_t j = 0;
    for (; j + LANES <= n; j += LANES)
        for (int l = 0; l < LANES; l++) m[l] = x[j + l] > m[l] ? x[j + l] : m[l];
    float r = -INFINITY;
    for (int l = 0; l < LANES; l++) r = m[l] > r ? m[l] : r;
    for (; j < n; j++) r = x[j] > r ? x[j] : r;
    return r;
}

LGAP_CLONES void lgap_softmax_rows(const float *x, float *out, ptrdiff_t rows, ptrdiff_t cols) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        float *row = out + r * cols;
        // Out of place: copy the row first (it stays in L1) and work in place, which vectorises.
        if (row != x + r * cols) memcpy(row, x + r * cols, (size_t)cols * sizeof(float));
        float m = row_max(row, cols);
        if (m == -INFINITY) {
            memset(row, 0, (size_t)cols * sizeof(float));
            continue;
        }
        float s[LANES] = {0};
        ptrdiff_t j = 0;
        for (; j + LANES <= cols; j += LANES)
            for (int l = 0; l < LANES; l++) {
                float e = exp_approx(row[j + l] - m);
                row[j + l] = e;
                s[l] += e;
            }
        float sum = 0.0f;
        for (int l = 0; l < LANES; l++) sum += s[l];
        for (; j < cols; j++) {
            float e = exp_approx(row[j] - m);
            row[j] = e;
            sum += e;
        }
        float inv = 1.0f / sum;
        for (ptrdiff_t k = 0; k < cols; k++) row[k] *= inv;
    }
}

// Mean and 1/sqrt(var + eps) of n floats, two passes (mean, then squared deviations) with 16 float
// lanes each, combined in double: vectorised, and accurate to float rounding for groups of
// millions of values (a one-pass E[x²] − E[x]² would cancel badly for offset data).
static inline double lane_sum(const float *x, ptrdiff_t n, float shift, int squares) {
    // Float lanes within blocks of 4096 values, blocks summed in double, so rounding error stays
    // at block scale however long the group is.
    double total = 0.0;
    for (ptrdiff_t b = 0; b < n; b += 4096) {
        ptrdiff_t end = n - b < 4096 ? n : b + 4096;
        float s[LANES] = {0};
        ptrdiff_t j = b;
        for (; j + LANES <= end; j += LANES)
            for (int l = 0; l < LANES; l++) {
                float d = x[j + l] - shift;
                s[l] += squares ? d * d : d;
            }
        for (int l = 0; l < LANES; l++) total += s[l];
        for (; j < end; j++) {
            double d = (double)x[j] - shift;
            total += squares ? d * d : d;
        }
    }
    return total;
}

static inline void moments(const float *x, ptrdiff_t n, float eps, float *mean, float *rstd) {
    float mu = (float)(lane_sum(x, n, 0.0f, 0) / (double)n);
    double var = lane_sum(x, n, mu, 1) / (double)n;
    *mean = mu;
    *rstd = (float)(1.0 / sqrt(var + (double)eps));
}

LGAP_CLONES void lgap_layernorm_rows(const float *x, float *y, ptrdiff_t rows, ptrdiff_t cols,
                                     const float *w, const float *b, float eps) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        float mean, rstd;
        moments(xr, cols, eps, &mean, &rstd);
        ELEMENTWISE
        for (ptrdiff_t j = 0; j < cols; j++) {
            float v = (xr[j] - mean) * rstd;
            if (w) v *= w[j];
            if (b) v += b[j];
            yr[j] = v;
        }
    }
}

LGAP_CLONES void lgap_groupnorm(const float *x, float *y, ptrdiff_t c, ptrdiff_t hw, ptrdiff_t groups,
                                const float *w, const float *b, float eps) {
    ptrdiff_t per = c / groups;
    for (ptrdiff_t g = 0; g < groups; g++) {
        const float *xg = x + g * per * hw;
        float mean, rstd;
        moments(xg, per * hw, eps, &mean, &rstd);
        for (ptrdiff_t ch = g * per; ch < (g + 1) * per; ch++) {
            float scale = rstd * (w ? w[ch] : 1.0f);
            float shift = (b ? b[ch] : 0.0f) - mean * scale;
            const float *xc = x + ch * hw;
            float *yc = y + ch * hw;
            ELEMENTWISE
            for (ptrdiff_t i = 0; i < hw; i++) yc[i] = xc[i] * scale + shift;
        }
    }
}

LGAP_CLONES void lgap_im2col(const float *x, ptrdiff_t c, ptrdiff_t h, ptrdiff_t w, ptrdiff_t kh, ptrdiff_t kw,
                             ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t wo,
                             ptrdiff_t row0, ptrdiff_t rows, float *col) {
    ptrdiff_t cols = rows * wo;
    for (ptrdiff_t ch = 0; ch < c; ch++) {
        const float *xc = x + ch * h * w;
        for (ptrdiff_t ki = 0; ki < kh; ki++) {
            for (ptrdiff_t kj = 0; kj < kw; kj++) {
                float *dst = col + ((ch * kh + ki) * kw + kj) * cols;
                // Output columns whose input column ox*sw - pw + kj lies inside [0, w).
                ptrdiff_t lo = pw - kj > 0 ? (pw - kj + sw - 1) / sw : 0;
                ptrdiff_t hi = (w - 1 + pw - kj) >= 0 ? (w - 1 + pw - kj) / sw + 1 : 0;
                if (hi > wo) hi = wo;
                if (lo > hi) lo = hi;
                for (ptrdiff_t r = 0; r < rows; r++) {
                    ptrdiff_t iy = (row0 + r) * sh - ph + ki;
                    float *d = dst + r * wo;
                    if (iy < 0 || iy >= h) {
                        memset(d, 0, (size_t)wo * sizeof(float));
                        continue;
                    }
                    const float *src = xc + iy * w - pw + kj;
                    for (ptrdiff_t ox = 0; ox < lo; ox++) d[ox] = 0.0f;
                    if (sw == 1) {
                        memcpy(d + lo, src + lo, (size_t)(hi - lo) * sizeof(float));
                    } else {
                        for (ptrdiff_t ox = lo; ox < hi; ox++) d[ox] = src[ox * sw];
                    }
                    for (ptrdiff_t ox = hi; ox < wo; ox++) d[ox] = 0.0f;
                }
            }
        }
    }
}

LGAP_CLONES void lgap_axpy(float a, const float *x, float *y, ptrdiff_t n) {
    ELEMENTWISE
    for (ptrdiff_t i = 0; i < n; i++) y[i] += a * x[i];
}

LGAP_CLONES void lgap_add(const float *x, const float *y, float *out, ptrdiff_t n) {
    ELEMENTWISE
    for (ptrdiff_t i = 0; i < n; i++) out[i] = x[i] + y[i];
}

LGAP_CLONES void lgap_mul(const float *x, const float *y, float *out, ptrdiff_t n) {
    ELEMENTWISE
    for (ptrdiff_t i = 0; i < n; i++) out[i] = x[i] * y[i];
}

LGAP_CLONES void lgap_add_row_bias(float *x, const float *bias, ptrdiff_t rows, ptrdiff_t cols) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        float *xr = x + r * cols;
        for (ptrdiff_t j = 0; j < cols; j++) xr[j] += bias[j];
    }
}

LGAP_CLONES void lgap_add_channel_bias(float *x, const float *bias, ptrdiff_t channels, ptrdiff_t inner) {
    for (ptrdiff_t ch = 0; ch < channels; ch++) {
        float *xc = x + ch * inner;
        float v = bias[ch];
        for (ptrdiff_t i = 0; i < inner; i++) xc[i] += v;
    }
}

void lgap_tune_allocator(void) {
#if defined(__GLIBC__)
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 0x7fffffff);
#endif
}

// Max pooling of one [h, w] plane into [ho, wo], PyTorch's semantics: padding never wins, a NaN in the
// window propagates. Each output row folds in its valid input rows one by one; columns whose window
// lies wholly inside the row take a loop without bounds checks (which vectorises), the few at the
// edges a checked one.
static inline float pool_max(float m, float v) { return (v > m || v != v) ? v : m; }

static inline float edge_window_max(const float *line, ptrdiff_t i0, ptrdiff_t kernel, ptrdiff_t w, float m) {
    for (ptrdiff_t kx = 0; kx < kernel; kx++)
        if (i0 + kx >= 0 && i0 + kx < w) m = pool_max(m, line[i0 + kx]);
    return m;
}

LGAP_CLONES void lgap_maxpool2d_plane(const float *x, ptrdiff_t h, ptrdiff_t w, ptrdiff_t kernel, ptrdiff_t stride,
                                      ptrdiff_t pad, ptrdiff_t ho, ptrdiff_t wo, float *out) {
    // Interior columns: ox·stride − pad ≥ 0 and ox·stride − pad + kernel ≤ w.
    ptrdiff_t lo = (pad + stride - 1) / stride;
    ptrdiff_t hi = w + pad - kernel >= 0 ? (w + pad - kernel) / stride + 1 : 0;
    if (lo > wo) lo = wo;
    if (hi > wo) hi = wo;
    if (hi < lo) hi = lo;
    for (ptrdiff_t oy = 0; oy < ho; oy++) {
        float *restrict row = out + oy * wo;
        for (ptrdiff_t ox = 0; ox < wo; ox++) row[ox] = -INFINITY;
        for (ptrdiff_t ky = 0; ky < kernel; ky++) {
            ptrdiff_t iy = oy * stride - pad + ky;
            if (iy < 0 || iy >= h) continue;
            const float *restrict line = x + iy * w;
            for (ptrdiff_t ox = 0; ox < lo; ox++) row[ox] = edge_window_max(line, ox * stride - pad, kernel, w, row[ox]);
            for (ptrdiff_t ox = lo; ox < hi; ox++) {
                const float *restrict s = line + ox * stride - pad;
                float m = row[ox];
                for (ptrdiff_t kx = 0; kx < kernel; kx++) m = pool_max(m, s[kx]);
                row[ox] = m;
            }
            for (ptrdiff_t ox = hi; ox < wo; ox++) row[ox] = edge_window_max(line, ox * stride - pad, kernel, w, row[ox]);
        }
    }
}
