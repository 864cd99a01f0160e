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
#include "int_divider.h"

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
template <typename I>
struct SpanT {
  I first;
  I count;
  I step;
};
using Span = SpanT<int64_t>;

// Candidate outputs [lo, hi) whose window may cover one input position.
template <typename I>
struct OutRangeT {
  I lo;
  I hi;
};
using OutRange = OutRangeT<int64_t>;

// Floor division that is correct for negative numerators.
SP_HD int64_t floor_div(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

// The functions below take the stride and dilation as dividers (int_divider.h): the
// CUDA kernels pass precomputed ones, the CPU kernels plain int64 values (overloads
// further down). Every numerator they divide is >= 0.

// Window of output `o`: positions o*s - p + j*d for j in [0, k) that lie in
// [0, in). Padding and the part of a ceil_mode window past the edge are simply
// not visited, which is the same as giving them weight 0 (-inf activation).
template <typename I, typename Div>
SP_HD SpanT<I> window_span(I o, I in, I k, I s, I p, const Div& dil) {
  const I d = dil.value();
  const I start = o * s - p;
  const I j0 = start < 0 ? dil.div(-start + d - 1) : I(0);
  I j1 = dil.div(in - start + d - 1);  // in - start > 0 for every valid window
  if (j1 > k) j1 = k;
  SpanT<I> span;
  span.first = start + j0 * d;
  span.count = j1 > j0 ? j1 - j0 : I(0);
  span.step = d;
  return span;
}

template <typename I, typename Div>
SP_HD OutRangeT<I> covering_outputs(I i, I out, I k, const Div& stride, I p, I d) {
  // o covers i when o*s - p <= i <= o*s - p + d*(k-1): lo = ceil(first / s), clamped to 0.
  const I s = stride.value();
  const I first = i + p - d * (k - 1);
  const I lo = first > 0 ? stride.div(first + s - 1) : I(0);
  I hi = stride.div(i + p) + 1;  // i + p >= 0
  if (hi > out) hi = out;
  OutRangeT<I> r;
  r.lo = lo;
  r.hi = hi > lo ? hi : lo;
  return r;
}

// With dilation > 1, a covering window may step over the position (i + p - o*s >= 0).
template <typename I, typename Div>
SP_HD bool window_hits(I i, I o, I s, I p, const Div& dil) {
  const I n = i + p - o * s;
  return dil.value() == 1 || n == dil.div(n) * dil.value();
}

SP_HD Span window_span(int64_t o, int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) {
  return window_span<int64_t>(o, in, k, s, p, PlainDivider<int64_t>(d));
}

SP_HD OutRange covering_outputs(int64_t i, int64_t out, int64_t k, int64_t s, int64_t p, int64_t d) {
  return covering_outputs<int64_t>(i, out, k, PlainDivider<int64_t>(s), p, d);
}

SP_HD bool window_hits(int64_t i, int64_t o, int64_t s, int64_t p, int64_t d) {
  return window_hits<int64_t>(i, o, s, p, PlainDivider<int64_t>(d));
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
template <typename scalar_t, typename acc_t, typename I>
SP_HD void forward_window(const scalar_t* x, I sd, I sh, I sw, SpanT<I> wd, SpanT<I> wh, SpanT<I> ww, scalar_t* y,
                          acc_t* lse) {
  acc_t hi = -std::numeric_limits<acc_t>::infinity();
  acc_t lo = std::numeric_limits<acc_t>::infinity();
  for (I a = 0; a < wd.count; ++a) {
    const scalar_t* xd = x + (wd.first + a * wd.step) * sd;
    for (I b = 0; b < wh.count; ++b) {
      const scalar_t* xh = xd + (wh.first + b * wh.step) * sh;
      for (I c = 0; c < ww.count; ++c)
        max_step<acc_t>(static_cast<acc_t>(xh[(ww.first + c * ww.step) * sw]), hi, lo);
    }
  }
  acc_t sum_e = 0, sum_ed = 0;
  for (I a = 0; a < wd.count; ++a) {
    const scalar_t* xd = x + (wd.first + a * wd.step) * sd;
    for (I b = 0; b < wh.count; ++b) {
      const scalar_t* xh = xd + (wh.first + b * wh.step) * sh;
      for (I c = 0; c < ww.count; ++c)
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
// Output-shaped tensors (grad_out, y, lse) share the strides od/oh/ow; G is the
// kernels' geometry (stride, pad, dilation[3]; stride and dilation as dividers).
template <typename scalar_t, typename acc_t, typename I, typename G>
SP_HD acc_t backward_input(acc_t a, I id, I ih, I iw, const G& g, OutRangeT<I> rd, OutRangeT<I> rh, OutRangeT<I> rw,
                           const scalar_t* grad_out, const scalar_t* y, const acc_t* lse, I od, I oh, I ow) {
  acc_t grad = 0;
  for (I pd = rd.lo; pd < rd.hi; ++pd) {
    if (!window_hits(id, pd, g.stride[0].value(), g.pad[0], g.dilation[0])) continue;
    for (I ph = rh.lo; ph < rh.hi; ++ph) {
      if (!window_hits(ih, ph, g.stride[1].value(), g.pad[1], g.dilation[1])) continue;
      for (I pw = rw.lo; pw < rw.hi; ++pw) {
        if (!window_hits(iw, pw, g.stride[2].value(), g.pad[2], g.dilation[2])) continue;
        const I o = pd * od + ph * oh + pw * ow;
        grad += window_grad<acc_t>(static_cast<acc_t>(grad_out[o]), a, static_cast<acc_t>(y[o]), lse[o]);
      }
    }
  }
  return grad;
}

}  // namespace softpool
