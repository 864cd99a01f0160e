// SoftPool arithmetic shared by the CPU and CUDA kernels.
//
// Every pool is computed as a 3-d pool over (D, H, W); 1-d and 2-d pools are
// the same code with unit leading dims. Only indexing and launching differ
// between softpool_cpu.cpp and softpool_cuda.cu: the per-output forward and the
// per-input backward below are the single definition of the math. (On the CPU,
// planes of moderate range take the algebraically identical plane-shifted form
// of softpool_cpu_shifted.h, one exp per input; every other plane runs these.)
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include "fast_math.h"

#if defined(__CUDACC__) || defined(__HIPCC__)
#define SP_HD __host__ __device__ __forceinline__
#else
#define SP_HD inline
#endif

namespace softpool {

struct PoolGeometry {
  int64_t in[3];
  int64_t out[3];
  int64_t kernel[3];
  int64_t stride[3];
  int64_t pad[3];
  int64_t dilation[3];
};

// Valid input positions of one window along one dim: first, first+step, ...
struct Span {
  int64_t first;
  int64_t count;
  int64_t step;
};

// Candidate outputs [lo, hi) whose window may cover one input position.
struct OutRange {
  int64_t lo;
  int64_t hi;
};

SP_HD int64_t ceil_div_nonneg(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Floor division that is correct for negative numerators.
SP_HD int64_t floor_div(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

// Window of output `o`: positions o*s - p + j*d for j in [0, k) that lie in
// [0, in). Padding and the part of a ceil_mode window past the edge are simply
// not visited, which is the same as giving them weight 0 (-inf activation).
SP_HD Span window_span(int64_t o, int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) {
  const int64_t start = o * s - p;
  const int64_t j0 = start < 0 ? ceil_div_nonneg(-start, d) : 0;
  int64_t j1 = ceil_div_nonneg(in - start, d);  // in - start > 0 for every valid window
  if (j1 > k) j1 = k;
  Span span;
  span.first = start + j0 * d;
  span.count = j1 > j0 ? j1 - j0 : 0;
  span.step = d;
  return span;
}

SP_HD OutRange covering_outputs(int64_t i, int64_t out, int64_t k, int64_t s, int64_t p, int64_t d) {
  // o covers i when o*s - p <= i <= o*s - p + d*(k-1).
  int64_t lo = -floor_div(-(i + p - d * (k - 1)), s);  // ceil division
  int64_t hi = floor_div(i + p, s) + 1;
  if (lo < 0) lo = 0;
  if (hi > out) hi = out;
  OutRange r;
  r.lo = lo;
  r.hi = hi > lo ? hi : lo;
  return r;
}

// With dilation > 1, a covering window may step over the position.
SP_HD bool window_hits(int64_t i, int64_t o, int64_t s, int64_t p, int64_t d) {
  return d == 1 || (i + p - o * s) % d == 0;
}

#if !(defined(__CUDA_ARCH__) || defined(__HIP_DEVICE_COMPILE__))
#define SP_HOST_PASS 1
#endif

template <typename acc_t>
SP_HD acc_t exp_acc(acc_t v) {
  return ::exp(v);
}

template <>
SP_HD float exp_acc<float>(float v) {
#ifdef SP_HOST_PASS
  return host_expf(v);
#else
  return ::expf(v);
#endif
}

template <typename acc_t>
SP_HD acc_t log_acc(acc_t v) {
  return ::log(v);
}

template <>
SP_HD float log_acc<float>(float v) {
#ifdef SP_HOST_PASS
  return host_logf(v);
#else
  return ::logf(v);
#endif
}

// The steps below are branch-free (selects only) so the CPU kernel can run
// them over lanes of neighbouring outputs and have the compiler vectorise.
// A position outside the input is either not visited or fed in as -inf;
// both give it weight 0.

// Pass 1: hi = window max (NaN-propagating), lo = min over entries > -inf.
template <typename acc_t>
SP_HD void max_step(acc_t v, acc_t& hi, acc_t& lo) {
  hi = (v > hi || v != v) ? v : hi;
  lo = (v < lo && v > -std::numeric_limits<acc_t>::infinity()) ? v : lo;
}

// Pass 2: sums of e = exp(a - hi) and of e * (a - hi).
template <typename acc_t>
SP_HD void exp_step(acc_t v, acc_t hi, acc_t& sum_e, acc_t& sum_ed) {
  const acc_t diff = v - hi;
  const acc_t e = exp_acc(diff);
  sum_e += e;
  sum_ed += e > acc_t(0) ? e * diff : acc_t(0);  // -inf entries: 0, not 0 * -inf
}

// y = hi + (weighted mean of a - hi): never above the max, and clamped to lo
// against rounding. lse = hi + log(sum_e). A window whose max is +-inf or NaN
// returns that max as both y and lse (as max_pool does).
template <typename acc_t>
SP_HD void finish_window(acc_t hi, acc_t lo, acc_t sum_e, acc_t sum_ed, acc_t& y, acc_t& lse) {
  const bool finite = (hi - hi) == acc_t(0);
  acc_t mean = hi + sum_ed / sum_e;
  mean = mean > hi ? hi : mean;
  mean = mean < lo ? lo : mean;
  y = finite ? mean : hi;
  lse = finite ? hi + log_acc(sum_e) : hi;
}

// Forward for one output over the valid positions of its window.
template <typename scalar_t, typename acc_t>
SP_HD void forward_window(const scalar_t* x, int64_t sd, int64_t sh, int64_t sw,
                          Span wd, Span wh, Span ww, scalar_t* y, acc_t* lse) {
  acc_t hi = -std::numeric_limits<acc_t>::infinity();
  acc_t lo = std::numeric_limits<acc_t>::infinity();
  for (int64_t a = 0; a < wd.count; ++a) {
    const scalar_t* xd = x + (wd.first + a * wd.step) * sd;
    for (int64_t b = 0; b < wh.count; ++b) {
      const scalar_t* xh = xd + (wh.first + b * wh.step) * sh;
      for (int64_t c = 0; c < ww.count; ++c)
        max_step<acc_t>(static_cast<acc_t>(xh[(ww.first + c * ww.step) * sw]), hi, lo);
    }
  }
  acc_t sum_e = 0, sum_ed = 0;
  for (int64_t a = 0; a < wd.count; ++a) {
    const scalar_t* xd = x + (wd.first + a * wd.step) * sd;
    for (int64_t b = 0; b < wh.count; ++b) {
      const scalar_t* xh = xd + (wh.first + b * wh.step) * sh;
      for (int64_t c = 0; c < ww.count; ++c)
        exp_step<acc_t>(static_cast<acc_t>(xh[(ww.first + c * ww.step) * sw]), hi, sum_e, sum_ed);
    }
  }
  acc_t out, l;
  finish_window<acc_t>(hi, lo, sum_e, sum_ed, out, l);
  *y = static_cast<scalar_t>(out);
  *lse = l;
}

// Contribution of one window to the gradient of one of its inputs a:
// dy/da = w (1 + a - y) with w = exp(a - lse). Zero when the window's max was
// infinite (y does not depend smoothly on a) and for -inf inputs (w = 0).
template <typename acc_t>
SP_HD acc_t window_grad(acc_t grad_out, acc_t a, acc_t y, acc_t lse) {
  const acc_t w = exp_acc(a - lse);
  const acc_t g = grad_out * w * (acc_t(1) + a - y);
  const acc_t r = w == acc_t(0) ? acc_t(0) : g;  // not 0 * -inf
  return ::fabs(lse) == std::numeric_limits<acc_t>::infinity() ? acc_t(0) : r;  // selects only: vectorises
}

// Backward for one input: a gather over every window that contains it, so
// each input is written once, without atomics, in a fixed order.
// Output-shaped tensors (grad_out, y, lse) share the strides od/oh/ow.
template <typename scalar_t, typename acc_t>
SP_HD acc_t backward_input(acc_t a, int64_t id, int64_t ih, int64_t iw, const PoolGeometry& g,
                           OutRange rd, OutRange rh, OutRange rw,
                           const scalar_t* grad_out, const scalar_t* y, const acc_t* lse,
                           int64_t od, int64_t oh, int64_t ow) {
  acc_t grad = 0;
  for (int64_t pd = rd.lo; pd < rd.hi; ++pd) {
    if (!window_hits(id, pd, g.stride[0], g.pad[0], g.dilation[0])) continue;
    for (int64_t ph = rh.lo; ph < rh.hi; ++ph) {
      if (!window_hits(ih, ph, g.stride[1], g.pad[1], g.dilation[1])) continue;
      for (int64_t pw = rw.lo; pw < rw.hi; ++pw) {
        if (!window_hits(iw, pw, g.stride[2], g.pad[2], g.dilation[2])) continue;
        const int64_t o = pd * od + ph * oh + pw * ow;
        grad += window_grad<acc_t>(static_cast<acc_t>(grad_out[o]), a,
                                   static_cast<acc_t>(y[o]), lse[o]);
      }
    }
  }
  return grad;
}

}  // namespace softpool
