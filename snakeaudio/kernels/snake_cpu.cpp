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
  for (int64_t k = 0; k < m; ++k) {
    const float v = std::fabs(a * x[k]);
    big = big > v ? big : v;  // NaN needs no special care: both paths propagate it
  }
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

// y = x + sin²(αx)·inv_scale over a row, block by block (the polynomial where it is accurate).
inline void snake_row_forward(const float *x, float *y, int64_t n, float a, float inv) {
  for (int64_t i = 0; i < n; i += kBlock) {
    const int64_t m = std::min(kBlock, n - i);
    if (max_abs_scaled(x + i, m, a) < kFastLimit)
      snake_block_forward<sincos_poly>(x + i, y + i, m, a, inv);
    else
      snake_block_forward<sincos_libm>(x + i, y + i, m, a, inv);
  }
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
//   y[i]   = Σ_k g[k] · A[clamp(r·i + k − pad_down)]  = Σ_k g[k] · A_{p_k}[i + d_k]
// Every loop below is a short FIR computed output by output (taps in registers,
// vectorised over time), with edge cases folded in by small separate loops.
struct AAPlan {
  int64_t T, r, S, Kd, pad_down;
  const float *W;
  const int64_t *base;
  const float *g;
  int64_t M;  // margin on both sides of every row buffer
  int64_t stride() const { return T + 2 * M; }
  int64_t phase(int64_t k) const { return k - pad_down - r * delay(k); }
  int64_t delay(int64_t k) const { return floor_div(k - pad_down, r); }
  static int64_t floor_div(int64_t a, int64_t b) { return (a >= 0) ? a / b : -((-a + b - 1) / b); }
};

AAPlan make_plan(int64_t T, int64_t r, const float *W, const int64_t *base, int64_t S, const float *g, int64_t Kd,
                 int64_t pad_down) {
  AAPlan P{T, r, S, Kd, pad_down, W, base, g, 0};
  for (int64_t p = 0; p < r; ++p) P.M = std::max({P.M, std::abs(base[p]), std::abs(base[p] + S - 1)});
  P.M = std::max({P.M, std::abs(P.delay(0)), std::abs(P.delay(Kd - 1))}) + 1;
  return P;
}

// Explicit SIMD through the compiler's vector extension (GCC and Clang): 16 floats,
// lowered to whatever the target has (one AVX-512 register, two AVX2 registers, ...).
typedef float vfloat __attribute__((vector_size(64)));
constexpr int64_t kLanes = sizeof(vfloat) / sizeof(float);

inline vfloat load(const float *p) {
  vfloat v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}

inline void store(float *p, vfloat v) { __builtin_memcpy(p, &v, sizeof v); }

// out[n] = Σ_j w[j] · src[j][n] for n in [0, m): a FIR whose taps point into row buffers.
// Tiles of 4·kLanes outputs accumulate in registers; every output sums its taps in the
// same order, so tiles and the scalar tail agree bit for bit.
inline void fir(float *out, const float *const *src, const float *w, int64_t taps, int64_t m) {
  constexpr int64_t kTile = 4 * kLanes;
  int64_t n0 = 0;
  for (; n0 + kTile <= m; n0 += kTile) {
    vfloat a0 = {}, a1 = {}, a2 = {}, a3 = {};
    for (int64_t j = 0; j < taps; ++j) {
      const vfloat wj = vfloat{} + w[j];
      const float *sp = src[j] + n0;
      a0 = wj * load(sp) + a0;
      a1 = wj * load(sp + kLanes) + a1;
      a2 = wj * load(sp + 2 * kLanes) + a2;
      a3 = wj * load(sp + 3 * kLanes) + a3;
    }
    store(out + n0, a0);
    store(out + n0 + kLanes, a1);
    store(out + n0 + 2 * kLanes, a2);
    store(out + n0 + 3 * kLanes, a3);
  }
  for (; n0 < m; ++n0) {
    float acc = 0.0f;
    for (int64_t j = 0; j < taps; ++j) acc = std::fma(w[j], src[j][n0], acc);
    out[n0] = acc;
  }
}

// Row scratch space of one thread.
struct AAScratch {
  std::vector<float> xpad, U, G;
  std::vector<const float *> src;
  std::vector<float> w;
  AAScratch(const AAPlan &P, bool backward)
      : xpad(P.stride()), U(P.r * P.stride()), G(backward ? P.r * P.stride() : 0),
        src(std::max(P.Kd, P.r * P.S)), w(std::max(P.Kd, P.r * P.S)) {}
};

// xpad[M + j] = x[clamp(j)] for j in [−M, T + M).
inline void replicate_pad(const AAPlan &P, const float *x, float *xpad) {
  std::fill(xpad, xpad + P.M, x[0]);
  std::copy(x, x + P.T, xpad + P.M);
  std::fill(xpad + P.M + P.T, xpad + P.stride(), x[P.T - 1]);
}

// Phase p of the upsampled signal (pre-activation) on [0, T).
inline void upsample_phase(const AAPlan &P, AAScratch &s, int64_t p, float *up) {
  for (int64_t j = 0; j < P.S; ++j) s.src[j] = s.xpad.data() + P.M + P.base[p] + j;
  fir(up, s.src.data(), P.W + p * P.S, P.S, P.T);
}

void aa_forward_row(const AAPlan &P, AAScratch &s, const float *x, float *y, float a, float inv) {
  const int64_t T = P.T, L = P.stride();
  float *U = s.U.data();
  replicate_pad(P, x, s.xpad.data());
  for (int64_t p = 0; p < P.r; ++p) {
    float *up = U + p * L + P.M;
    upsample_phase(P, s, p, up);
    snake_row_forward(up, up, T, a, inv);  // in place
  }
  const float left = U[P.M], right = U[(P.r - 1) * L + P.M + T - 1];
  for (int64_t p = 0; p < P.r; ++p) {
    std::fill(U + p * L, U + p * L + P.M, left);
    std::fill(U + p * L + P.M + T, U + (p + 1) * L, right);
  }
  for (int64_t k = 0; k < P.Kd; ++k) s.src[k] = U + P.phase(k) * L + P.M + P.delay(k);
  fir(y, s.src.data(), P.g, P.Kd, T);
}

template <bool kBeta>
void aa_backward_row(const AAPlan &P, AAScratch &s, const float *x, const float *gy, float *gx, float a, float inv,
                     float &ga_row, float &gb_row) {
  const int64_t T = P.T, L = P.stride(), M = P.M;
  float *U = s.U.data(), *G = s.G.data();
  replicate_pad(P, x, s.xpad.data());
  for (int64_t p = 0; p < P.r; ++p) upsample_phase(P, s, p, U + p * L + M);
  // Gradient w.r.t. the activated signal: the transposed down FIR, read from a zero-padded
  // copy of gy (in the first phase buffer of G, which is written last).
  float *gypad = s.xpad.data();
  std::fill(gypad, gypad + L, 0.0f);
  std::copy(gy, gy + T, gypad + M);
  for (int64_t p = P.r - 1; p >= 0; --p) {
    int64_t taps = 0;
    for (int64_t k = 0; k < P.Kd; ++k) {
      if (P.phase(k) != p) continue;
      s.src[taps] = gypad + M - P.delay(k);
      s.w[taps++] = P.g[k];
    }
    fir(G + p * L + M, s.src.data(), s.w.data(), taps, T);
  }
  // Taps that read beyond either end of the activated signal read its edge samples.
  float left = 0.0f, right = 0.0f;
  for (int64_t k = 0; k < P.Kd; ++k) {
    for (int64_t i = 0; i < T && P.r * i + k - P.pad_down < 0; ++i) left += P.g[k] * gy[i];
    for (int64_t i = T - 1; i >= 0 && P.r * i + k - P.pad_down >= P.r * T; --i) right += P.g[k] * gy[i];
  }
  G[M] += left;
  G[(P.r - 1) * L + M + T - 1] += right;
  // Through the activation, in place: G_p ← G_p · snake'(U_p); zero margins for the next FIR.
  double ga_total = 0.0, gb_total = 0.0;
  for (int64_t p = 0; p < P.r; ++p) {
    float ga, gb;
    snake_row_backward<kBeta>(U + p * L + M, G + p * L + M, G + p * L + M, T, a, inv, ga, gb);
    ga_total += ga;
    gb_total += gb;
    std::fill(G + p * L, G + p * L + M, 0.0f);
    std::fill(G + p * L + M + T, G + (p + 1) * L, 0.0f);
  }
  ga_row = static_cast<float>(ga_total);
  gb_row = static_cast<float>(gb_total);
  // Through the upsampling: gx[m] = Σ_{p,s} W[p,s] · gU_p[m − base_p − s], edges folded onto x[0], x[T−1].
  int64_t taps = 0;
  for (int64_t p = 0; p < P.r; ++p) {
    for (int64_t j = 0; j < P.S; ++j) {
      s.src[taps] = G + p * L + M - P.base[p] - j;
      s.w[taps++] = P.W[p * P.S + j];
    }
  }
  fir(gx, s.src.data(), s.w.data(), taps, T);
  for (int64_t p = 0; p < P.r; ++p) {
    const float *gp = G + p * L + M;
    for (int64_t j = 0; j < P.S; ++j) {
      const float w = P.W[p * P.S + j];
      const int64_t shift = P.base[p] + j;
      for (int64_t n = 0; n < T && n + shift < 0; ++n) gx[0] += w * gp[n];
      for (int64_t n = T - 1; n >= 0 && n + shift > T - 1; --n) gx[T - 1] += w * gp[n];
    }
  }
}

}  // namespace

extern "C" {

int snakeaudio_abi_version() { return 2; }

void snake_forward(const float *x, const float *alpha, const float *inv_scale, float *y, int64_t rows,
                   int64_t channels, int64_t n, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t ch = r % channels;
    snake_row_forward(x + r * n, y + r * n, n, alpha[ch], inv_scale[ch]);
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
    AAScratch scratch(P, false);
#pragma omp for schedule(static)
    for (int64_t row = 0; row < rows; ++row) {
      const int64_t ch = row % channels;
      aa_forward_row(P, scratch, x + row * T, y + row * T, alpha[ch], inv_scale[ch]);
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
    AAScratch scratch(P, true);
#pragma omp for schedule(static)
    for (int64_t row = 0; row < rows; ++row) {
      const int64_t ch = row % channels;
      const float *xr = x + row * T, *gr = grad + row * T;
      float *gxr = grad_x + row * T;
      float gb = 0.0f;
      if (has_beta) {
        aa_backward_row<true>(P, scratch, xr, gr, gxr, alpha[ch], inv_scale[ch], grad_alpha_rows[row], gb);
        grad_beta_rows[row] = gb;
      } else {
        aa_backward_row<false>(P, scratch, xr, gr, gxr, alpha[ch], inv_scale[ch], grad_alpha_rows[row], gb);
      }
    }
  }
}

}  // extern "C"
