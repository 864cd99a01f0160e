// exp and log for the float accumulator on the host, branch-free so that GCC
// vectorises the CPU kernels' lane loops (glibc's expf is a scalar call).
// Cody-Waite range reduction and minimax polynomials (the classic Cephes
// coefficients); about 1 ulp over the range the kernels use. On the device
// the CUDA math library is used instead.
#pragma once

#include <cstdint>
#include <cstring>

namespace softpool {

inline float bits_to_float(int32_t b) {
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}

inline int32_t float_to_bits(float f) {
  int32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
}

// exp(x); exactly 0 below -87.3 (so -inf and padded lanes weigh nothing),
// +inf above 88.7, NaN for NaN.
inline float host_expf(float x) {
  const float kLog2e = 1.44269504088896341f;
  const float kLn2Hi = 0.693359375f;
  const float kLn2Lo = -2.12194440e-4f;
  float xc = x > 88.7f ? 88.7f : x;
  xc = xc < -87.3f ? -87.3f : xc;
  float t = xc * kLog2e + 0.5f;
  const float fn = __builtin_floorf(t);  // vectorises (roundps), unlike an integer fix-up
  const int32_t n = static_cast<int32_t>(fn);
  float r = xc - fn * kLn2Hi;
  r = r - fn * kLn2Lo;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const float scale = bits_to_float((n + 127) << 23);
  float result = p * scale;
  result = x < -87.3f ? 0.0f : result;
  result = x > 88.7f ? __builtin_inff() : result;
  return result;  // NaN stays NaN through the clamps and the polynomial
}

// log(x) for x >= 1 (the kernels take the log of a sum of exps, which is in
// [1, window size]); x = 0 gives -inf and NaN stays NaN.
inline float host_logf(float x) {
  const int32_t bits = float_to_bits(x);
  const float e_raw = static_cast<float>(((bits >> 23) & 0xff) - 126);
  float m = bits_to_float((bits & 0x007fffff) | 0x3f000000);  // mantissa in [0.5, 1)
  const bool small = m < 0.707106781186547524f;
  const float fe = small ? e_raw - 1.0f : e_raw;
  m = small ? m + m - 1.0f : m - 1.0f;
  const float z = m * m;
  float p = 7.0376836292e-2f;
  p = p * m - 1.1514610310e-1f;
  p = p * m + 1.1676998740e-1f;
  p = p * m - 1.2420140846e-1f;
  p = p * m + 1.4249322787e-1f;
  p = p * m - 1.6668057665e-1f;
  p = p * m + 2.0000714765e-1f;
  p = p * m - 2.4999993993e-1f;
  p = p * m + 3.3333331174e-1f;
  float y = p * m * z;
  y += fe * -2.12194440e-4f;
  y += -0.5f * z;
  float result = m + y + fe * 0.693359375f;
  result = x == 0.0f ? -__builtin_inff() : result;
  result = x == __builtin_inff() ? x : result;
  return x != x ? x : result;
}

}  // namespace softpool
