// CPU SoftPool with one shift per (n, c) plane: one exp per input instead of
// one per (window, input), and window sums that are plain row sums.
//
// softpool_math.h subtracts each window's own max before exp. Any shift M gives
// the same weights, w_i = exp(a_i - M) / sum_j exp(a_j - M); the window max only
// keeps exp in range. When a plane is finite and spans at most kMaxPlaneRange,
// M = plane max keeps every exp(a - M) a normal float (>= e^-32, full relative
// precision), so each input's exp is computed once and shared by every window
// that covers it. Backward factors w_i = exp(a_i - M) * exp(M - lse_w), with
// M = the plane's largest lse:
//
//   grad_i = exp(a_i - M) * ((1 + a_i - M) * B1_i - B2_i),
//   B1_i = sum_{w covers i} g_w exp(M - lse_w),  B2_i = same sum of g_w exp(M - lse_w) (y_w - M),
//
// transposed-pool sums of per-output values: one exp per output and per input.
// Values are kept relative to M so the rounding error stays that of the plane's
// range, as with the per-window max. Sums run in a fixed order: deterministic.
// A plane with inf/NaN, a wider range or gradients large enough to overflow
// takes the per-window kernels instead (softpool_cpu.cpp). The CUDA kernels
// always use the per-window form; the tests check both CPU paths against the
// reference.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "softpool_math.h"

namespace softpool {
namespace shifted {

// exp(-32) ~ 1.3e-14: window sums stay normal and exp(M - lse) <= e^32.
constexpr double kMaxPlaneRange = 32.0;

// Planes whose buffers would need more per thread take the per-window path.
constexpr int64_t kMaxScratchBytes = 32 << 20;

// A strided (D, H, W) plane: element (d, h, w) at base[d * s[0] + h * s[1] + w * s[2]].
template <typename scalar_t>
struct Plane {
  const scalar_t* base;
  const int64_t* size;
  const int64_t* stride;
};

template <typename acc_t>
struct PlaneStats {
  acc_t hi;
  acc_t lo;
  bool usable;  // finite everywhere and hi - lo <= kMaxPlaneRange
};

// Copies one row of the plane into acc_t (also undoing a channels_last stride).
template <typename scalar_t, typename acc_t>
void load_row(const scalar_t* row, int64_t sw, int64_t width, acc_t* out) {
  if (sw == 1) {
    for (int64_t w = 0; w < width; ++w) out[w] = static_cast<acc_t>(row[w]);
  } else {
    for (int64_t w = 0; w < width; ++w) out[w] = static_cast<acc_t>(row[w * sw]);
  }
}

// The row itself when it already is contiguous acc_t, else a copy in `buffer`.
template <typename scalar_t, typename acc_t>
const acc_t* row_values(const scalar_t* row, int64_t sw, int64_t width, acc_t* buffer) {
  if constexpr (std::is_same_v<scalar_t, acc_t>) {
    if (sw == 1) return row;
  }
  load_row(row, sw, width, buffer);
  return buffer;
}

// Folds n values into a running max, min and NaN probe (v * 0 is NaN exactly
// for inf and NaN), in lanes so that the loop vectorises.
template <typename acc_t>
void fold_stats(const acc_t* v, int64_t n, PlaneStats<acc_t>& s, acc_t& probe) {
  constexpr int64_t kL = 16;
  acc_t hi[kL], lo[kL], pr[kL];
  for (int64_t j = 0; j < kL; ++j) {
    hi[j] = s.hi;
    lo[j] = s.lo;
    pr[j] = 0;
  }
  int64_t i = 0;
  for (; i + kL <= n; i += kL) {
#pragma omp simd
    for (int64_t j = 0; j < kL; ++j) {
      const acc_t x = v[i + j];
      hi[j] = x > hi[j] ? x : hi[j];
      lo[j] = x < lo[j] ? x : lo[j];
      pr[j] += x * acc_t(0);
    }
  }
  for (int64_t j = 0; i < n; ++i, ++j) {
    hi[j] = v[i] > hi[j] ? v[i] : hi[j];
    lo[j] = v[i] < lo[j] ? v[i] : lo[j];
    pr[j] += v[i] * acc_t(0);
  }
  for (int64_t j = 0; j < kL; ++j) {
    s.hi = hi[j] > s.hi ? hi[j] : s.hi;
    s.lo = lo[j] < s.lo ? lo[j] : s.lo;
    probe += pr[j];
  }
}

// Max and min of a strided (D, H, W) tensor; usable when finite and within range.
template <typename value_t, typename acc_t>
PlaneStats<acc_t> plane_stats(const value_t* base, const int64_t* size, const int64_t* stride, acc_t* row) {
  PlaneStats<acc_t> s;
  s.hi = -std::numeric_limits<acc_t>::infinity();
  s.lo = std::numeric_limits<acc_t>::infinity();
  acc_t probe = 0;
  const bool contiguous = std::is_same_v<value_t, acc_t> && stride[2] == 1 && stride[1] == size[2] &&
                          stride[0] == size[1] * size[2];
  if (contiguous) {  // one long run: short rows would leave the lanes idle
    fold_stats(reinterpret_cast<const acc_t*>(base), size[0] * size[1] * size[2], s, probe);
  } else {
    for (int64_t d = 0; d < size[0]; ++d) {
      for (int64_t h = 0; h < size[1]; ++h)
        fold_stats(row_values(base + d * stride[0] + h * stride[1], stride[2], size[2], row), size[2], s, probe);
    }
  }
  s.usable = probe == acc_t(0) && s.hi - s.lo <= acc_t(kMaxPlaneRange);
  return s;
}

// ---------------------------------------------------------------- forward

// Per-thread buffers of the forward. Input depth slices live in a ring of
// `extent` slots (a window's depths are distinct modulo its extent), each slot
// holding x, e = exp(x - M) and e * (x - M) for a whole (H, W) slice.
template <typename acc_t>
struct ForwardScratch {
  int64_t slice = 0;   // H * W
  int64_t extent = 0;  // (kd - 1) * dd + 1 slots
  int64_t padded = 0;  // padded row length for the w pass
  std::vector<acc_t> ring;
  std::vector<int64_t> held;  // input depth held by each slot, -1 for none
  std::vector<acc_t> rows;    // 4 padded row accumulators, then 4 per-output arrays
  std::vector<const acc_t*> window_slices;  // the slots of one output depth's window

  static bool fits(const PoolGeometry& g) {
    const int64_t extent = (g.kernel[0] - 1) * g.dilation[0] + 1;
    return 3 * extent * g.in[1] * g.in[2] * static_cast<int64_t>(sizeof(acc_t)) <= kMaxScratchBytes;
  }

  explicit ForwardScratch(const PoolGeometry& g) {
    if (!fits(g)) return;  // left empty: unused
    slice = g.in[1] * g.in[2];
    extent = (g.kernel[0] - 1) * g.dilation[0] + 1;
    // Windows along w start at ow * s - p: left padding p, right padding up to
    // the end of the last (ceil_mode) window.
    const int64_t end = (g.out[2] - 1) * g.stride[2] + (g.kernel[2] - 1) * g.dilation[2] + 1;
    padded = std::max(end, g.pad[2] + g.in[2]);
    ring.resize(3 * extent * slice);
    held.assign(extent, -1);
    rows.resize(4 * padded + 4 * g.out[2]);
    window_slices.resize(g.kernel[0]);
  }
};

// e and e * (x - M) of one input depth slice, into its ring slot.
template <typename scalar_t, typename acc_t>
const acc_t* load_slice(const Plane<scalar_t>& x, int64_t d, acc_t shift, ForwardScratch<acc_t>& s) {
  const int64_t slot = d % s.extent;
  acc_t* xv = s.ring.data() + 3 * slot * s.slice;
  if (s.held[slot] == d) return xv;
  s.held[slot] = d;
  const int64_t width = x.size[2];
  for (int64_t h = 0; h < x.size[1]; ++h)
    load_row(x.base + d * x.stride[0] + h * x.stride[1], x.stride[2], width, xv + h * width);
  acc_t* e = xv + s.slice;
  acc_t* ed = e + s.slice;
#pragma omp simd
  for (int64_t i = 0; i < s.slice; ++i) {
    const acc_t diff = xv[i] - shift;
    e[i] = exp_acc(diff);
    ed[i] = e[i] * diff;
  }
  return xv;
}

// Row sums over the (depth, height) part of one output row's windows: for every
// input w, the sums of e and e * (x - M) and the max and min of x, written
// from offset `pad` of padded rows whose padding is neutral (0, 0, -inf, +inf).
template <typename acc_t>
void sum_window_rows(const acc_t* const* slices, int64_t n_slices, Span wh, int64_t width, int64_t slice,
                     acc_t* sum_e, acc_t* sum_ed, acc_t* hi, acc_t* lo) {
  bool first = true;
  for (int64_t a = 0; a < n_slices; ++a) {
    for (int64_t b = 0; b < wh.count; ++b) {
      const acc_t* xv = slices[a] + (wh.first + b * wh.step) * width;
      const acc_t* e = xv + slice;
      const acc_t* ed = e + slice;
      if (first) {
#pragma omp simd
        for (int64_t w = 0; w < width; ++w) {
          sum_e[w] = e[w];
          sum_ed[w] = ed[w];
          hi[w] = xv[w];
          lo[w] = xv[w];
        }
        first = false;
        continue;
      }
#pragma omp simd
      for (int64_t w = 0; w < width; ++w) {
        sum_e[w] += e[w];
        sum_ed[w] += ed[w];
        hi[w] = std::max(hi[w], xv[w]);
        lo[w] = std::min(lo[w], xv[w]);
      }
    }
  }
}

// Window of output ow along w in the padded rows: k entries from ow * s, step d.
template <typename acc_t>
void window_sums_along_w(const acc_t* sum_e, const acc_t* sum_ed, const acc_t* hi, const acc_t* lo,
                         const PoolGeometry& g, acc_t* out_e, acc_t* out_ed, acc_t* out_hi, acc_t* out_lo) {
  const int64_t k = g.kernel[2], s = g.stride[2], d = g.dilation[2], n = g.out[2];
  for (int64_t o = 0; o < n; ++o) {
    const int64_t start = o * s;
    acc_t se = sum_e[start], sed = sum_ed[start], h = hi[start], l = lo[start];
    for (int64_t j = 1; j < k; ++j) {
      const int64_t i = start + j * d;
      se += sum_e[i];
      sed += sum_ed[i];
      h = std::max(h, hi[i]);
      l = std::min(l, lo[i]);
    }
    out_e[o] = se;
    out_ed[o] = sed;
    out_hi[o] = h;
    out_lo[o] = l;
  }
}

// Forward of one plane, or false (nothing written) when it needs the per-window path.
template <typename scalar_t, typename acc_t>
bool forward_plane(const Plane<scalar_t>& x, const PoolGeometry& g, const std::vector<Span>* spans,
                   scalar_t* y, acc_t* lse, const int64_t* os, ForwardScratch<acc_t>& s) {
  if (s.ring.empty()) return false;
  acc_t* rows = s.rows.data();
  const PlaneStats<acc_t> stats = plane_stats(x.base, x.size, x.stride, rows);
  if (!stats.usable) return false;
  const acc_t shift = stats.hi;
  const int64_t width = g.in[2], pad = g.pad[2], n_out = g.out[2];
  acc_t* sum_e = rows;
  acc_t* sum_ed = sum_e + s.padded;
  acc_t* hi = sum_ed + s.padded;
  acc_t* lo = hi + s.padded;
  acc_t* out_e = lo + s.padded;
  acc_t* out_ed = out_e + n_out;
  acc_t* out_hi = out_ed + n_out;
  acc_t* out_lo = out_hi + n_out;
  for (int64_t i = 0; i < s.padded; ++i) {  // padding: neutral for sum, max and min
    sum_e[i] = sum_ed[i] = 0;
    hi[i] = -std::numeric_limits<acc_t>::infinity();
    lo[i] = std::numeric_limits<acc_t>::infinity();
  }
  std::fill(s.held.begin(), s.held.end(), -1);
  const acc_t** slices = s.window_slices.data();
  for (int64_t od = 0; od < g.out[0]; ++od) {
    const Span wd = spans[0][od];
    for (int64_t a = 0; a < wd.count; ++a) slices[a] = load_slice(x, wd.first + a * wd.step, shift, s);
    for (int64_t oh = 0; oh < g.out[1]; ++oh) {
      sum_window_rows(slices, wd.count, spans[1][oh], width, s.slice, sum_e + pad, sum_ed + pad, hi + pad,
                      lo + pad);
      window_sums_along_w(sum_e, sum_ed, hi, lo, g, out_e, out_ed, out_hi, out_lo);
      // y = M + weighted mean of (x - M), clamped to the window against rounding.
#pragma omp simd
      for (int64_t o = 0; o < n_out; ++o) {
        acc_t mean = shift + out_ed[o] / out_e[o];
        mean = mean > out_hi[o] ? out_hi[o] : mean;
        out_ed[o] = mean < out_lo[o] ? out_lo[o] : mean;
        out_e[o] = shift + log_acc(out_e[o]);
      }
      const int64_t row = od * os[2] + oh * os[3];
      for (int64_t o = 0; o < n_out; ++o) {
        y[row + o * os[4]] = static_cast<scalar_t>(out_ed[o]);
        lse[row + o * os[4]] = out_e[o];
      }
    }
  }
  return true;
}

// ---------------------------------------------------------------- backward
//
// The backward's shift is the largest lse of the plane: every input a window
// covers is at most its window's lse, so exp(a - M) <= 1 (up to rounding), and
// exp(M - lse) <= e^range with range = max lse - min lse. An input whose
// exp(a - M) underflows has w < e^(range - 87): a negligible weight.

// Per-thread buffers of the backward. Each output row (pd, ph) of the plane's
// P = g exp(M - lse) and Q = P (y - M) is kept spread along input w: P[ow] at
// offset + ow * s, zeros between (written once: every plane writes the same
// entries). The transposed pool along w is then a box sum of a spread row.
template <typename acc_t>
struct BackwardScratch {
  int64_t offset = 0;  // (k - 1) * d: room for the windows left of input 0
  int64_t spread = 0;  // length of a spread row
  int64_t out_rows = 0;
  std::vector<acc_t> spreads;  // P then Q, (Dout * Hout, spread) each
  std::vector<acc_t> rows;

  static int64_t spread_length(const PoolGeometry& g) {
    return (g.kernel[2] - 1) * g.dilation[2] + g.in[2] + g.pad[2];  // the last window starts before in + pad
  }

  static bool fits(const PoolGeometry& g) {
    const int64_t values = 2 * g.out[0] * g.out[1] * spread_length(g);
    return values * static_cast<int64_t>(sizeof(acc_t)) <= kMaxScratchBytes;
  }

  BackwardScratch(const PoolGeometry& g, bool wanted) {
    if (!wanted || !fits(g)) return;  // left empty: the plane takes the per-window path
    offset = (g.kernel[2] - 1) * g.dilation[2];
    spread = spread_length(g);
    out_rows = g.out[0] * g.out[1];
    spreads.assign(2 * out_rows * spread, acc_t(0));
    rows.resize(3 * std::max(g.in[2], g.out[2]) + 2 * spread);
  }
};

// Spread P and Q of one plane with shift M = max lse; false when lse, y or
// grad_out is not finite, lse spans more than kMaxPlaneRange, or P and Q are
// large enough that summing a window volume of them could overflow.
template <typename scalar_t, typename acc_t>
bool output_weights(const scalar_t* grad_out, const scalar_t* y, const acc_t* lse, const int64_t* os,
                    const PoolGeometry& g, BackwardScratch<acc_t>& s, acc_t& shift) {
  const int64_t n = g.out[2];
  acc_t* pr = s.rows.data();
  acc_t* qr = pr + n;
  acc_t* lr_buf = qr + n;
  const PlaneStats<acc_t> stats = plane_stats(lse, g.out, os + 2, lr_buf);
  if (!stats.usable) return false;
  shift = stats.hi;
  acc_t probe = 0, largest = 0;
  for (int64_t od = 0; od < g.out[0]; ++od) {
    for (int64_t oh = 0; oh < g.out[1]; ++oh) {
      const int64_t offset = od * os[2] + oh * os[3];
      load_row(grad_out + offset, os[4], n, pr);
      load_row(y + offset, os[4], n, qr);
      const acc_t* lr = row_values(lse + offset, os[4], n, lr_buf);
#pragma omp simd reduction(+ : probe) reduction(max : largest)
      for (int64_t o = 0; o < n; ++o) {
        const acc_t scaled = pr[o] * exp_acc(shift - lr[o]);
        pr[o] = scaled;
        qr[o] = scaled * (qr[o] - shift);
        probe += pr[o] * acc_t(0) + qr[o] * acc_t(0);
        const acc_t size = std::fabs(pr[o]) + std::fabs(qr[o]);
        largest = size > largest ? size : largest;
      }
      const int64_t row = (od * g.out[1] + oh) * s.spread + s.offset;
      acc_t* sp = s.spreads.data() + row;
      acc_t* sq = sp + s.out_rows * s.spread;
      for (int64_t o = 0; o < n; ++o) {
        sp[o * g.stride[2]] = pr[o];
        sq[o * g.stride[2]] = qr[o];
      }
    }
  }
  const double volume = static_cast<double>(g.kernel[0] * g.kernel[1] * g.kernel[2]);
  const double range = static_cast<double>(stats.hi - stats.lo);
  const double limit = static_cast<double>(std::numeric_limits<acc_t>::max()) / (4.0 * volume * (2.0 + range));
  return probe == acc_t(0) && static_cast<double>(largest) <= limit;
}

// Sums of the spread P and Q rows over the output rows (pd, ph) whose windows
// contain input row (id, ih); false when no window does.
template <typename acc_t>
bool covering_row_sums(const BackwardScratch<acc_t>& s, const PoolGeometry& g,
                       const std::vector<OutRange>* ranges, int64_t id, int64_t ih, acc_t* row_p, acc_t* row_q) {
  const int64_t n = s.spread;
  const acc_t* p = s.spreads.data();
  const acc_t* q = p + s.out_rows * n;
  bool any = false;
  for (int64_t pd = ranges[0][id].lo; pd < ranges[0][id].hi; ++pd) {
    if (!window_hits(id, pd, g.stride[0], g.pad[0], g.dilation[0])) continue;
    for (int64_t ph = ranges[1][ih].lo; ph < ranges[1][ih].hi; ++ph) {
      if (!window_hits(ih, ph, g.stride[1], g.pad[1], g.dilation[1])) continue;
      const acc_t* pr = p + (pd * g.out[1] + ph) * n;
      const acc_t* qr = q + (pd * g.out[1] + ph) * n;
      if (!any) {
        std::copy(pr, pr + n, row_p);
        std::copy(qr, qr + n, row_q);
        any = true;
        continue;
      }
#pragma omp simd
      for (int64_t o = 0; o < n; ++o) {
        row_p[o] += pr[o];
        row_q[o] += qr[o];
      }
    }
  }
  return any;
}

// Transposed pool along w: b[iw] = sum of v over the windows covering iw. The
// window starting at t = ow * s - p covers iw = t + j d, so b[iw] sums the
// spread row at iw + p - j d.
template <typename acc_t>
void sum_spread_windows(const acc_t* spread, const PoolGeometry& g, int64_t offset, acc_t* b) {
  const int64_t dil = g.dilation[2], width = g.in[2], lead = offset + g.pad[2];
  const acc_t* first = spread + lead;
#pragma omp simd
  for (int64_t iw = 0; iw < width; ++iw) b[iw] = first[iw];
  for (int64_t j = 1; j < g.kernel[2]; ++j) {
    const acc_t* sj = spread + lead - j * dil;
#pragma omp simd
    for (int64_t iw = 0; iw < width; ++iw) b[iw] += sj[iw];
  }
}

// grad = exp(a - M) ((1 + a - M) B1 - B2); zero where no window covers the
// input (whatever a is) and where exp underflows (a = -inf included), as
// window_grad does. Plain selects keep the loop vectorised without masked loads.
template <typename acc_t>
void finish_gradient(const acc_t* a, const acc_t* b1, const acc_t* b2, int64_t width, acc_t shift, acc_t* grad) {
#pragma omp simd
  for (int64_t iw = 0; iw < width; ++iw) {
    const acc_t diff = a[iw] - shift;
    const acc_t e = exp_acc(diff);
    const acc_t p = b1[iw], q = b2[iw];
    acc_t v = e * ((acc_t(1) + diff) * p - q);
    v = e == acc_t(0) ? acc_t(0) : v;
    v = p == acc_t(0) ? (q == acc_t(0) ? acc_t(0) : v) : v;
    grad[iw] = v;
  }
}

// Gradient of one plane, or false (nothing written) when it needs the per-window path.
template <typename scalar_t, typename acc_t>
bool backward_plane(const Plane<scalar_t>& x, const scalar_t* grad_out, const scalar_t* y, const acc_t* lse,
                    const int64_t* os, const PoolGeometry& g, const std::vector<OutRange>* ranges,
                    scalar_t* grad, const int64_t* gs, BackwardScratch<acc_t>& s) {
  if (s.spreads.empty()) return false;
  acc_t shift;
  if (!output_weights(grad_out, y, lse, os, g, s, shift)) return false;
  const int64_t width = g.in[2];
  const int64_t row_len = std::max(width, g.out[2]);
  acc_t* a_buf = s.rows.data();
  acc_t* b1 = a_buf + row_len;
  acc_t* b2 = b1 + row_len;
  acc_t* row_p = b2 + row_len;
  acc_t* row_q = row_p + s.spread;
  for (int64_t id = 0; id < g.in[0]; ++id) {
    for (int64_t ih = 0; ih < g.in[1]; ++ih) {
      scalar_t* g_row = grad + id * gs[2] + ih * gs[3];
      if (!covering_row_sums(s, g, ranges, id, ih, row_p, row_q)) {  // no window reaches this row
        for (int64_t iw = 0; iw < width; ++iw) g_row[iw * gs[4]] = scalar_t(0);
        continue;
      }
      sum_spread_windows(row_p, g, s.offset, b1);
      sum_spread_windows(row_q, g, s.offset, b2);
      const acc_t* a = row_values(x.base + id * x.stride[0] + ih * x.stride[1], x.stride[2], width, a_buf);
      if constexpr (std::is_same_v<scalar_t, acc_t>) {
        if (gs[4] == 1) {
          finish_gradient(a, b1, b2, width, shift, g_row);
          continue;
        }
      }
      finish_gradient(a, b1, b2, width, shift, b1);
      for (int64_t iw = 0; iw < width; ++iw) g_row[iw * gs[4]] = static_cast<scalar_t>(b1[iw]);
    }
  }
  return true;
}

}  // namespace shifted
}  // namespace softpool
