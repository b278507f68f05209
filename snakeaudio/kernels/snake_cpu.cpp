// Fused CPU kernels for the Snake family, float32, called through ctypes.
//
// Layout: x is contiguous (rows, n) where row r belongs to channel r % channels.
// Per-channel parameters arrive prepared by the caller:
//   alpha      the frequency α, already clamped away from zero in magnitude
//   inv_scale  1/α (Snake) or 1/β (SnakeBeta)
// Parameter gradients are written per row (rows,) and reduced by the caller.
#include <cmath>
#include <cstdint>
#include <omp.h>

namespace {

// Range-reduced polynomial sin/cos (Cephes single-precision coefficients),
// written so that the compiler vectorises loops that call it. Accurate to a
// couple of ulp for |u| < kFastLimit; larger arguments go through libm.
constexpr float kFastLimit = 8192.0f;

inline void sincos_poly(float u, float &s, float &c) {
  const float j = std::nearbyint(u * 0.63661977236758134f);  // u / (π/2)
  const int q = static_cast<int>(j);
  float r = std::fma(j, -1.5703125f, u);
  r = std::fma(j, -4.837512969970703125e-4f, r);
  r = std::fma(j, -7.54978995489188216e-8f, r);
  const float z = r * r;
  const float sp = std::fma(std::fma(std::fma(-1.9515295891e-4f, z, 8.3321608736e-3f), z, -1.6666654611e-1f) * z, r, r);
  const float cp = std::fma(std::fma(std::fma(2.443315711809948e-5f, z, -1.388731625493765e-3f), z, 4.166664568298827e-2f) * z, z,
                            std::fma(-0.5f, z, 1.0f));
  float ss = (q & 1) ? cp : sp;
  float cc = (q & 1) ? sp : cp;
  s = (q & 2) ? -ss : ss;
  c = ((q + 1) & 2) ? -cc : cc;
}

inline void sincos_libm(float u, float &s, float &c) {
  s = std::sin(u);
  c = std::cos(u);
}

// Largest |a·x| over a block: decides between the polynomial and libm.
inline float max_abs_scaled(const float *x, int64_t m, float a) {
  float big = 0.0f;
#pragma omp simd reduction(max : big)
  for (int64_t k = 0; k < m; ++k) big = std::fmax(big, std::fabs(a * x[k]));
  return big;
}

constexpr int64_t kBlock = 256;

// y = x + sin²(αx)·inv_scale over one block.
template <void (*SinCos)(float, float &, float &)>
inline void snake_block_forward(const float *x, float *y, int64_t m, float a, float inv) {
#pragma omp simd
  for (int64_t k = 0; k < m; ++k) {
    float s, c;
    SinCos(a * x[k], s, c);
    y[k] = std::fma(s * s, inv, x[k]);
  }
}

// Gradients over one block; returns the block's parameter-gradient sums.
template <void (*SinCos)(float, float &, float &), bool kBeta>
inline void snake_block_backward(const float *x, const float *g, float *gx, int64_t m, float a, float inv, float &ga_out,
                                 float &gb_out) {
  float ga = 0.0f, gb = 0.0f;
#pragma omp simd reduction(+ : ga, gb)
  for (int64_t k = 0; k < m; ++k) {
    float s, c;
    SinCos(a * x[k], s, c);
    if (kBeta) {
      const float s2c = 2.0f * s * c * inv;
      gx[k] = std::fma(g[k], a * s2c, g[k]);
      ga += g[k] * x[k] * s2c;
      gb -= g[k] * s * s * inv * inv;
    } else {
      const float q = s * inv;
      gx[k] = std::fma(g[k], 2.0f * s * c, g[k]);
      ga += g[k] * q * std::fma(2.0f * x[k], c, -q);
    }
  }
  ga_out = ga;
  gb_out = gb;
}

template <bool kBeta>
inline void snake_row_backward(const float *x, const float *g, float *gx, int64_t n, float a, float inv, float &ga_row,
                               float &gb_row) {
  double ga_total = 0.0, gb_total = 0.0;
  for (int64_t i = 0; i < n; i += kBlock) {
    const int64_t m = (n - i < kBlock) ? n - i : kBlock;
    float ga, gb;
    if (max_abs_scaled(x + i, m, a) < kFastLimit)
      snake_block_backward<sincos_poly, kBeta>(x + i, g + i, gx + i, m, a, inv, ga, gb);
    else
      snake_block_backward<sincos_libm, kBeta>(x + i, g + i, gx + i, m, a, inv, ga, gb);
    ga_total += ga;
    gb_total += gb;
  }
  ga_row = static_cast<float>(ga_total);
  gb_row = static_cast<float>(gb_total);
}

}  // namespace

extern "C" {

int snakeaudio_abi_version() { return 1; }

void snake_forward(const float *x, const float *alpha, const float *inv_scale, float *y, int64_t rows,
                   int64_t channels, int64_t n, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t ch = r % channels;
    const float a = alpha[ch], inv = inv_scale[ch];
    for (int64_t i = 0; i < n; i += kBlock) {
      const int64_t m = (n - i < kBlock) ? n - i : kBlock;
      const float *xb = x + r * n + i;
      float *yb = y + r * n + i;
      if (max_abs_scaled(xb, m, a) < kFastLimit)
        snake_block_forward<sincos_poly>(xb, yb, m, a, inv);
      else
        snake_block_forward<sincos_libm>(xb, yb, m, a, inv);
    }
  }
}

// Gradients of y = x + sin²(αx)·inv_scale, s = sin(αx), c = cos(αx).
// Snake (has_beta == 0, inv_scale = 1/α):
//   dy/dx = 1 + 2sc,  dy/dα = q(2xc − q) with q = s/α (finite as α → 0)
// SnakeBeta (has_beta == 1, inv_scale = 1/β):
//   dy/dx = 1 + 2αsc/β,  dy/dα = 2xsc/β,  dy/dβ = −s²/β²
void snake_backward(const float *x, const float *grad, const float *alpha, const float *inv_scale, int has_beta,
                    float *grad_x, float *grad_alpha_rows, float *grad_beta_rows, int64_t rows, int64_t channels,
                    int64_t n, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t ch = r % channels;
    float gb = 0.0f;
    if (has_beta) {
      snake_row_backward<true>(x + r * n, grad + r * n, grad_x + r * n, n, alpha[ch], inv_scale[ch],
                               grad_alpha_rows[r], gb);
      grad_beta_rows[r] = gb;
    } else {
      snake_row_backward<false>(x + r * n, grad + r * n, grad_x + r * n, n, alpha[ch], inv_scale[ch],
                                grad_alpha_rows[r], gb);
    }
  }
}

}  // extern "C"
