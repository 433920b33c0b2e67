// exp, the logistic sigmoid and tanh for the handlers of this folder:
// float32 through a branch-free polynomial exp, so that loops over them
// vectorise; float64 through the C library.
#ifndef RNNLM_JAX_CSRC_FASTMATH_H_
#define RNNLM_JAX_CSRC_FASTMATH_H_

#include <cmath>
#include <cstdint>
#include <cstring>

namespace rnnlm {

// exp(x) for float: Cody-Waite reduction and a degree-6 polynomial
// (relative error about 2e-7), branch-free so that loops over it
// vectorise; NaN stays NaN, and the range is clamped where float ends.
inline float Exp(float x) {
  float xc = x < -87.33f ? -87.33f : (x > 88.37f ? 88.37f : x);
  xc = xc == xc ? xc : 0.0f;
  const float kMagic = 12582912.0f;  // 1.5 * 2^23: rounds to an integer.
  float n = (xc * 1.44269504088896341f + kMagic) - kMagic;
  float r = xc - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  float y = p * scale;
  return x == x ? y : x;
}

inline double Exp(double x) { return std::exp(x); }

template <typename T>
inline T Sigmoid(T x) {
  return T(1) / (T(1) + Exp(-x));
}

// tanh from exp(-2|x|); below |x| = 0.2, where 1 - exp(-2|x|) would lose
// digits, its Taylor series to x^9 (relative error under 1e-8 there).
inline float Tanh(float x) {
  float a = std::fabs(x);
  float e = Exp(-2.0f * a);
  float far = (1.0f - e) / (1.0f + e);
  float x2 = x * x;
  float near = a * (1.0f + x2 * (-1.0f / 3 + x2 * (2.0f / 15 +
                x2 * (-17.0f / 315 + x2 * (62.0f / 2835)))));
  return std::copysign(a < 0.2f ? near : far, x);
}

inline double Tanh(double x) { return std::tanh(x); }

}  // namespace rnnlm

#endif  // RNNLM_JAX_CSRC_FASTMATH_H_
