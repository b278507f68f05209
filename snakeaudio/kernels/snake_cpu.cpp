// Fused CPU kernels for the Snake family, float32, called through ctypes.
//
// Layout: x is contiguous (rows, n) where row r belongs to channel r % channels.
// Per-channel parameters arrive prepared by the caller:
//   alpha      the frequency α, already clamped away from zero in magnitude
//   inv_scale  1/α (Snake) or 1/β (SnakeBeta)
// Parameter gradients are written per row (rows,) and reduced by the caller.
//
// The anti-aliased kernels (aa_snake_*) compute BigVGAN's Activation1d with
// equal up/down ratio r in polyphase form, one row at a time: the r phases of the
// upsampled signal live in row-sized scratch buffers, never in memory shared with
// the caller, and the backward recomputes them.
#include <cmath>
#include <cstdint>
#include <omp.h>

#include <algorithm>
#include <vector>

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
    const float gk = g[k], xk = x[k];  // gx may alias g
    if (kBeta) {
      const float s2c = 2.0f * s * c * inv;
      gx[k] = std::fma(gk, a * s2c, gk);
      ga += gk * xk * s2c;
      gb -= gk * s * s * inv * inv;
    } else {
      const float q = s * inv;
      gx[k] = std::fma(gk, 2.0f * s * c, gk);
      ga += gk * q * std::fma(2.0f * xk, c, -q);
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


// Polyphase description of BigVGAN's ×r upsample + activation + ×r low-pass/downsample.
//   U_p[n] = Σ_s W[p·S + s] · x[clamp(n + base[p] + s)]          (phase p of the upsampled signal)
//   A      = snake(U), edges replicated from A[0] = A_0[0] and A[rT−1] = A_{r−1}[T−1]
//   y[i]   = Σ_k g[k] · A[clamp(r·i + k − pad_down)]
struct AAPlan {
  int64_t T, r, S, Kd, pad_down;
  const float *W;
  const int64_t *base;
  const float *g;
  int64_t M;   // margin of the padded input row
  int64_t M2;  // margin of each phase buffer
  int64_t stride() const { return T + 2 * M2; }
};

inline int64_t floor_div(int64_t a, int64_t b) { return (a >= 0) ? a / b : -((-a + b - 1) / b); }

AAPlan make_plan(int64_t T, int64_t r, const float *W, const int64_t *base, int64_t S, const float *g, int64_t Kd,
                 int64_t pad_down) {
  AAPlan plan{T, r, S, Kd, pad_down, W, base, g, 0, 0};
  for (int64_t p = 0; p < r; ++p) plan.M = std::max({plan.M, std::abs(base[p]), std::abs(base[p] + S - 1)});
  plan.M2 = std::max(std::abs(floor_div(-pad_down, r)), std::abs(floor_div(Kd - 1 - pad_down, r))) + 1;
  return plan;
}

// Fills U's phases (pre-activation) on [0, T) from one input row.
void aa_upsample_row(const AAPlan &P, const float *x, float *xpad, float *U) {
  const int64_t T = P.T;
  for (int64_t j = 0; j < T + 2 * P.M; ++j) xpad[j] = x[std::min(std::max(j - P.M, int64_t(0)), T - 1)];
  for (int64_t p = 0; p < P.r; ++p) {
    float *up = U + p * P.stride() + P.M2;
    std::fill(up, up + T, 0.0f);
    for (int64_t s = 0; s < P.S; ++s) {
      const float w = P.W[p * P.S + s];
      if (w == 0.0f) continue;
      const float *src = xpad + P.M + P.base[p] + s;
#pragma omp simd
      for (int64_t n = 0; n < T; ++n) up[n] = std::fma(w, src[n], up[n]);
    }
  }
}

void aa_forward_row(const AAPlan &P, const float *x, float *y, float a, float inv, float *xpad, float *U) {
  const int64_t T = P.T, L = P.stride();
  aa_upsample_row(P, x, xpad, U);
  for (int64_t p = 0; p < P.r; ++p) {
    float *up = U + p * L + P.M2;
    for (int64_t i = 0; i < T; i += kBlock) {
      const int64_t m = std::min(kBlock, T - i);
      if (max_abs_scaled(up + i, m, a) < kFastLimit)
        snake_block_forward<sincos_poly>(up + i, up + i, m, a, inv);
      else
        snake_block_forward<sincos_libm>(up + i, up + i, m, a, inv);
    }
  }
  const float left = U[P.M2], right = U[(P.r - 1) * L + P.M2 + T - 1];
  for (int64_t p = 0; p < P.r; ++p) {
    float *up = U + p * L;
    std::fill(up, up + P.M2, left);
    std::fill(up + P.M2 + T, up + L, right);
  }
  std::fill(y, y + T, 0.0f);
  for (int64_t k = 0; k < P.Kd; ++k) {
    const int64_t j = k - P.pad_down, d = floor_div(j, P.r), p = j - d * P.r;
    const float w = P.g[k];
    const float *src = U + p * L + P.M2 + d;
#pragma omp simd
    for (int64_t i = 0; i < T; ++i) y[i] = std::fma(w, src[i], y[i]);
  }
}

template <bool kBeta>
void aa_backward_row(const AAPlan &P, const float *x, const float *gy, float *gx, float a, float inv, float &ga_row,
                     float &gb_row, float *xpad, float *U, float *G) {
  const int64_t T = P.T, L = P.stride();
  aa_upsample_row(P, x, xpad, U);
  // Gradient w.r.t. the activated upsampled signal, with out-of-range taps folded onto the edges.
  std::fill(G, G + P.r * L, 0.0f);
  for (int64_t k = 0; k < P.Kd; ++k) {
    const int64_t j = k - P.pad_down, d = floor_div(j, P.r), p = j - d * P.r;
    const float w = P.g[k];
    float *dst = G + p * L + P.M2 + d;
#pragma omp simd
    for (int64_t i = 0; i < T; ++i) dst[i] = std::fma(w, gy[i], dst[i]);
  }
  float left = 0.0f, right = 0.0f;
  for (int64_t p = 0; p < P.r; ++p) {
    const float *gp = G + p * L;
    for (int64_t n = 0; n < P.M2; ++n) left += gp[n];
    for (int64_t n = P.M2 + T; n < L; ++n) right += gp[n];
  }
  G[P.M2] += left;
  G[(P.r - 1) * L + P.M2 + T - 1] += right;
  // Through the activation, in place: G_p ← G_p · snake'(U_p).
  double ga_total = 0.0, gb_total = 0.0;
  for (int64_t p = 0; p < P.r; ++p) {
    float ga, gb;
    snake_row_backward<kBeta>(U + p * L + P.M2, G + p * L + P.M2, G + p * L + P.M2, T, a, inv, ga, gb);
    ga_total += ga;
    gb_total += gb;
  }
  ga_row = static_cast<float>(ga_total);
  gb_row = static_cast<float>(gb_total);
  // Through the upsampling (transposed polyphase FIR), edges folded onto x[0] and x[T−1].
  float *gpad = xpad;
  std::fill(gpad, gpad + T + 2 * P.M, 0.0f);
  for (int64_t p = 0; p < P.r; ++p) {
    const float *gp = G + p * L + P.M2;
    for (int64_t s = 0; s < P.S; ++s) {
      const float w = P.W[p * P.S + s];
      if (w == 0.0f) continue;
      float *dst = gpad + P.M + P.base[p] + s;
#pragma omp simd
      for (int64_t n = 0; n < T; ++n) dst[n] = std::fma(w, gp[n], dst[n]);
    }
  }
  std::copy(gpad + P.M, gpad + P.M + T, gx);
  for (int64_t j = 0; j < P.M; ++j) gx[0] += gpad[j];
  for (int64_t j = P.M + T; j < T + 2 * P.M; ++j) gx[T - 1] += gpad[j];
}

}  // namespace

extern "C" {

int snakeaudio_abi_version() { return 2; }

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

void aa_snake_forward(const float *x, const float *alpha, const float *inv_scale, float *y, int64_t rows,
                      int64_t channels, int64_t T, int64_t r, const float *W, const int64_t *base, int64_t S,
                      const float *g, int64_t Kd, int64_t pad_down, int threads) {
  const AAPlan P = make_plan(T, r, W, base, S, g, Kd, pad_down);
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> xpad(T + 2 * P.M), U(r * P.stride());
#pragma omp for schedule(static)
    for (int64_t row = 0; row < rows; ++row) {
      const int64_t ch = row % channels;
      aa_forward_row(P, x + row * T, y + row * T, alpha[ch], inv_scale[ch], xpad.data(), U.data());
    }
  }
}

void aa_snake_backward(const float *x, const float *grad, const float *alpha, const float *inv_scale, int has_beta,
                       float *grad_x, float *grad_alpha_rows, float *grad_beta_rows, int64_t rows, int64_t channels,
                       int64_t T, int64_t r, const float *W, const int64_t *base, int64_t S, const float *g,
                       int64_t Kd, int64_t pad_down, int threads) {
  const AAPlan P = make_plan(T, r, W, base, S, g, Kd, pad_down);
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> xpad(T + 2 * P.M), U(r * P.stride()), G(r * P.stride());
#pragma omp for schedule(static)
    for (int64_t row = 0; row < rows; ++row) {
      const int64_t ch = row % channels;
      float gb = 0.0f;
      if (has_beta) {
        aa_backward_row<true>(P, x + row * T, grad + row * T, grad_x + row * T, alpha[ch], inv_scale[ch],
                              grad_alpha_rows[row], gb, xpad.data(), U.data(), G.data());
        grad_beta_rows[row] = gb;
      } else {
        aa_backward_row<false>(P, x + row * T, grad + row * T, grad_x + row * T, alpha[ch], inv_scale[ch],
                               grad_alpha_rows[row], gb, xpad.data(), U.data(), G.data());
      }
    }
  }
}

}  // extern "C"
