// CPU kernels under at::parallel_for, one (n, c) plane per task.
//
// A plane that is finite and of moderate range takes the plane-shifted path of
// softpool_cpu_shifted.h (one exp per input, window sums as row sums; in
// backward only where windows overlap). Any other plane takes the per-window
// path below, the shared math of softpool_math.h:
// rows of neighbouring outputs (forward) or inputs (backward) are processed
// kLanes at a time, the window values gathered into small arrays (invalid
// positions as -inf) and the branch-free steps run over the lanes, which the
// compiler vectorises.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "softpool.h"
#include "softpool_cpu_shifted.h"

namespace softpool {

namespace {

constexpr int64_t kLanes = 16;

int64_t plane_grain(int64_t plane_size) {
  return std::max<int64_t>(1, at::internal::GRAIN_SIZE / std::max<int64_t>(1, plane_size));
}

// Gathers x at w positions first[l] + offset of one input row; lanes past the
// row's outputs or outside the input read -inf. Kept scalar: vector gathers of
// strided, masked positions are slower than plain loads.
template <typename scalar_t, typename acc_t>
__attribute__((optimize("no-tree-vectorize"))) inline void gather_window_column(
    const scalar_t* row, int64_t sw, int64_t width, const int64_t* first, int64_t offset, int64_t lanes,
    bool interior, acc_t* v) {
  if (interior) {  // every lane's position is inside the row: no checks
    for (int64_t l = 0; l < kLanes; ++l) v[l] = static_cast<acc_t>(row[(first[l] + offset) * sw]);
    return;
  }
  for (int64_t l = 0; l < kLanes; ++l) {
    const int64_t pos = first[l] + offset;
    v[l] = (l < lanes && pos >= 0 && pos < width) ? static_cast<acc_t>(row[pos * sw])
                                                  : -std::numeric_limits<acc_t>::infinity();
  }
}

// Window columns buffered between the two passes; larger windows gather twice.
constexpr int64_t kMaxBuffered = 32;

// Forward for up to kLanes consecutive outputs of one (n, c, od, oh) row.
template <typename scalar_t, typename acc_t>
void forward_lanes(const scalar_t* xplane, const int64_t* xs, const PoolGeometry& g, Span wd, Span wh,
                   const int64_t* first, int64_t lanes, scalar_t* y, acc_t* lse, int64_t out_sw) {
  acc_t hi[kLanes], lo[kLanes], sum_e[kLanes], sum_ed[kLanes];
  acc_t buffer[kMaxBuffered][kLanes];
  for (int64_t l = 0; l < kLanes; ++l) {
    hi[l] = -std::numeric_limits<acc_t>::infinity();
    lo[l] = std::numeric_limits<acc_t>::infinity();
    sum_e[l] = 0;
    sum_ed[l] = 0;
  }
  const int64_t kw = g.kernel[2], dw = g.dilation[2], width = g.in[2];
  const bool interior = lanes == kLanes && first[0] >= 0 && first[kLanes - 1] + (kw - 1) * dw < width;
  const bool buffered = wd.count * wh.count * kw <= kMaxBuffered;
  int64_t column = 0;
  for (int64_t a = 0; a < wd.count; ++a) {
    for (int64_t b = 0; b < wh.count; ++b) {
      const scalar_t* row = xplane + (wd.first + a * wd.step) * xs[2] + (wh.first + b * wh.step) * xs[3];
      for (int64_t j = 0; j < kw; ++j) {
        acc_t* v = buffer[buffered ? column++ : 0];
        gather_window_column(row, xs[4], width, first, j * dw, lanes, interior, v);
#pragma omp simd
        for (int64_t l = 0; l < kLanes; ++l) max_step<acc_t>(v[l], hi[l], lo[l]);
      }
    }
  }
  column = 0;
  for (int64_t a = 0; a < wd.count; ++a) {
    for (int64_t b = 0; b < wh.count; ++b) {
      const scalar_t* row = xplane + (wd.first + a * wd.step) * xs[2] + (wh.first + b * wh.step) * xs[3];
      for (int64_t j = 0; j < kw; ++j) {
        acc_t* v = buffer[buffered ? column++ : 0];
        if (!buffered) gather_window_column(row, xs[4], width, first, j * dw, lanes, interior, v);
#pragma omp simd
        for (int64_t l = 0; l < kLanes; ++l) exp_step<acc_t>(v[l], hi[l], sum_e[l], sum_ed[l]);
      }
    }
  }
  acc_t out[kLanes], lse_out[kLanes];
#pragma omp simd
  for (int64_t l = 0; l < kLanes; ++l) finish_window<acc_t>(hi[l], lo[l], sum_e[l], sum_ed[l], out[l], lse_out[l]);
  for (int64_t l = 0; l < lanes; ++l) {
    y[l * out_sw] = static_cast<scalar_t>(out[l]);
    lse[l * out_sw] = lse_out[l];
  }
}

// Backward for up to kLanes consecutive inputs of one (n, c, id, ih) row: for
// every covering (pd, ph) and every covering pw, gather that window's
// (grad_out, y, lse) per lane; lanes without such a window get lse = +inf,
// which window_grad turns into exactly 0. pw_table[iw * per_input + t] is the
// t-th window along w covering iw, or -1 (tabulated once per call).
template <typename scalar_t, typename acc_t>
void backward_lanes(const scalar_t* x_row, int64_t x_sw, int64_t iw0, int64_t lanes, const int64_t* dh_offsets,
                    int64_t n_dh, const int64_t* pw_table, int64_t per_input, const scalar_t* grad_out,
                    const scalar_t* y, const acc_t* lse, int64_t o_sw, scalar_t* grad_row, int64_t g_sw) {
  acc_t a[kLanes], acc[kLanes], go[kLanes], yv[kLanes], lv[kLanes];
  for (int64_t l = 0; l < kLanes; ++l) {
    a[l] = l < lanes ? static_cast<acc_t>(x_row[(iw0 + l) * x_sw]) : acc_t(0);
    acc[l] = 0;
  }
  const acc_t inf = std::numeric_limits<acc_t>::infinity();
  const int64_t* table = pw_table + iw0 * per_input;  // padded with -1 rows past the end
  for (int64_t k = 0; k < n_dh; ++k) {
    const int64_t base = dh_offsets[k];
    for (int64_t t = 0; t < per_input; ++t) {
      for (int64_t l = 0; l < kLanes; ++l) {
        const int64_t pw = table[l * per_input + t];
        const int64_t o = base + (pw >= 0 ? pw : 0) * o_sw;
        go[l] = pw >= 0 ? static_cast<acc_t>(grad_out[o]) : acc_t(0);
        yv[l] = pw >= 0 ? static_cast<acc_t>(y[o]) : acc_t(0);
        lv[l] = pw >= 0 ? lse[o] : inf;
      }
#pragma omp simd
      for (int64_t l = 0; l < kLanes; ++l) acc[l] += window_grad<acc_t>(go[l], a[l], yv[l], lv[l]);
    }
  }
  for (int64_t l = 0; l < lanes; ++l) grad_row[(iw0 + l) * g_sw] = static_cast<scalar_t>(acc[l]);
}

// Per-plane cache for backward: every output row (pd, ph) of the plane spread
// along input w, so that entry [t][iw] holds the t-th window covering iw (its
// grad_out, y, lse; lse = +inf where there is none). Built once per plane, it
// turns the per-input gather into contiguous, vectorisable loops, and each
// output row is read once however many input rows it covers.
constexpr int64_t kMaxExpandedBytes = 8 << 20;

template <typename scalar_t, typename acc_t>
void expand_plane_outputs(const scalar_t* grad_out, const scalar_t* y, const acc_t* lse, const int64_t* os,
                          const PoolGeometry& g, const int64_t* pw_table, int64_t per_input, acc_t* go_x,
                          acc_t* y_x, acc_t* lse_x) {
  const int64_t width = g.in[2];
  const acc_t inf = std::numeric_limits<acc_t>::infinity();
  for (int64_t pd = 0; pd < g.out[0]; ++pd) {
    for (int64_t ph = 0; ph < g.out[1]; ++ph) {
      const int64_t row = pd * os[2] + ph * os[3];
      const int64_t base = (pd * g.out[1] + ph) * per_input * width;
      for (int64_t t = 0; t < per_input; ++t) {
        for (int64_t iw = 0; iw < width; ++iw) {
          const int64_t pw = pw_table[iw * per_input + t];
          const int64_t o = row + (pw >= 0 ? pw : 0) * os[4];
          const int64_t e = base + t * width + iw;
          go_x[e] = pw >= 0 ? static_cast<acc_t>(grad_out[o]) : acc_t(0);
          y_x[e] = pw >= 0 ? static_cast<acc_t>(y[o]) : acc_t(0);
          lse_x[e] = pw >= 0 ? lse[o] : inf;
        }
      }
    }
  }
}

// Gradient of one input row from the expanded plane: windows are visited in
// (pd, ph, pw) order, as backward_input does.
template <typename acc_t>
void backward_row_expanded(const acc_t* a, int64_t width, const int64_t* rows, int64_t n_rows, int64_t per_input,
                           const acc_t* go_x, const acc_t* y_x, const acc_t* lse_x, acc_t* acc) {
  for (int64_t iw = 0; iw < width; ++iw) acc[iw] = 0;
  for (int64_t k = 0; k < n_rows; ++k) {
    for (int64_t t = 0; t < per_input; ++t) {
      const int64_t base = (rows[k] * per_input + t) * width;
      const acc_t* go = go_x + base;
      const acc_t* yv = y_x + base;
      const acc_t* lv = lse_x + base;
#pragma omp simd
      for (int64_t iw = 0; iw < width; ++iw) acc[iw] += window_grad<acc_t>(go[iw], a[iw], yv[iw], lv[iw]);
    }
  }
}

bool windows_overlap(const PoolGeometry& g) {
  for (int i = 0; i < 3; ++i) {
    if ((g.kernel[i] - 1) * g.dilation[i] + 1 > g.stride[i]) return true;
  }
  return false;
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> forward_cpu(const at::Tensor& x_in, at::IntArrayRef kernel_size,
                                               at::IntArrayRef stride, at::IntArrayRef padding,
                                               at::IntArrayRef dilation, bool ceil_mode) {
  const ForwardBuffers b = forward_buffers(x_in, kernel_size, stride, padding, dilation, ceil_mode);
  const at::Tensor &x = b.x, &out = b.out, &lse = b.lse;
  const PoolGeometry& g = b.g;
  if (out.numel() == 0) return {out, lse};

  const at::Tensor x5 = as_5d(x, b.spatial_dims);
  const at::Tensor o5 = as_5d(out, b.spatial_dims);
  std::vector<Span> spans[2];
  for (int i = 0; i < 2; ++i) {
    for (int64_t o = 0; o < g.out[i]; ++o)
      spans[i].push_back(window_span(o, g.in[i], g.kernel[i], g.stride[i], g.pad[i], g.dilation[i]));
  }
  // Window origin along w for every output, padded so a lane block never reads past the end.
  std::vector<int64_t> first_w(g.out[2] + kLanes, 0);
  for (int64_t o = 0; o < g.out[2]; ++o) first_w[o] = o * g.stride[2] - g.pad[2];
  const int64_t channels = x5.size(1);
  const int64_t planes = x5.size(0) * channels;
  const int64_t plane_out = g.out[0] * g.out[1] * g.out[2];

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "softpool_forward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* xp = x5.const_data_ptr<scalar_t>();
    scalar_t* yp = o5.data_ptr<scalar_t>();
    acc_t* lp = lse.data_ptr<acc_t>();  // same shape and layout as out, so same strides
    const int64_t* xs = x5.strides().data();
    const int64_t* os = o5.strides().data();
    at::parallel_for(0, planes, plane_grain(plane_out), [&](int64_t begin, int64_t end) {
      shifted::ForwardScratch<acc_t> scratch(g);
      for (int64_t plane = begin; plane < end; ++plane) {
        const int64_t n = plane / channels, c = plane % channels;
        const scalar_t* xplane = xp + n * xs[0] + c * xs[1];
        const int64_t obase = n * os[0] + c * os[1];
        const shifted::Plane<scalar_t> xv{xplane, g.in, xs + 2};
        if (shifted::forward_plane<scalar_t, acc_t>(xv, g, spans, yp + obase, lp + obase, os, scratch)) continue;
        for (int64_t od = 0; od < g.out[0]; ++od) {
          for (int64_t oh = 0; oh < g.out[1]; ++oh) {
            const int64_t row = n * os[0] + c * os[1] + od * os[2] + oh * os[3];
            for (int64_t ow = 0; ow < g.out[2]; ow += kLanes) {
              const int64_t lanes = std::min(kLanes, g.out[2] - ow);
              forward_lanes<scalar_t, acc_t>(xplane, xs, g, spans[0][od], spans[1][oh], first_w.data() + ow,
                                             lanes, yp + row + ow * os[4], lp + row + ow * os[4], os[4]);
            }
          }
        }
      }
    });
  });
  return {out, lse};
}

at::Tensor backward_cpu(const at::Tensor& grad_out_in, const at::Tensor& x_in, const at::Tensor& out_in,
                        const at::Tensor& lse_in, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                        at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode) {
  const BackwardBuffers b =
      backward_buffers(grad_out_in, x_in, out_in, lse_in, kernel_size, stride, padding, dilation, ceil_mode);
  const at::Tensor &x = b.x, &out = b.out, &lse = b.lse;
  const at::Tensor& grad_in = b.grad_in;
  const PoolGeometry& g = b.g;
  if (x.numel() == 0) return grad_in;

  const at::Tensor x5 = as_5d(x, b.spatial_dims);
  const at::Tensor gi5 = as_5d(grad_in, b.spatial_dims);
  const at::Tensor go5 = as_5d(b.grad_out, b.spatial_dims);
  std::vector<OutRange> ranges[3];
  for (int i = 0; i < 3; ++i) {
    for (int64_t p = 0; p < g.in[i]; ++p)
      ranges[i].push_back(covering_outputs(p, g.out[i], g.kernel[i], g.stride[i], g.pad[i], g.dilation[i]));
  }
  int64_t per_input = 1;
  for (const OutRange& r : ranges[2]) per_input = std::max(per_input, r.hi - r.lo);
  std::vector<int64_t> pw_table((g.in[2] + kLanes) * per_input, -1);
  for (int64_t iw = 0; iw < g.in[2]; ++iw) {
    int64_t t = 0;
    for (int64_t pw = ranges[2][iw].lo; pw < ranges[2][iw].hi; ++pw) {
      if (window_hits(iw, pw, g.stride[2], g.pad[2], g.dilation[2])) pw_table[iw * per_input + t++] = pw;
    }
  }
  const int64_t channels = x5.size(1);
  const int64_t planes = x5.size(0) * channels;
  const int64_t plane_in = g.in[0] * g.in[1] * g.in[2];

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "softpool_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* xp = x5.const_data_ptr<scalar_t>();
    scalar_t* gip = gi5.data_ptr<scalar_t>();
    const scalar_t* gop = go5.const_data_ptr<scalar_t>();
    const scalar_t* yp = out.const_data_ptr<scalar_t>();
    const acc_t* lp = lse.const_data_ptr<acc_t>();
    const int64_t* xs = x5.strides().data();
    const int64_t* gs = gi5.strides().data();
    const int64_t* os = go5.strides().data();
    const int64_t expanded = g.out[0] * g.out[1] * per_input * g.in[2];
    const bool use_expanded = expanded * 3 * static_cast<int64_t>(sizeof(acc_t)) <= kMaxExpandedBytes;
    // Without overlap every input is in at most one window: the per-window
    // gather already takes one exp per input and has less to set up.
    const bool shifted_backward = windows_overlap(g);
    at::parallel_for(0, planes, plane_grain(plane_in), [&](int64_t begin, int64_t end) {
      std::vector<int64_t> dh_offsets, dh_rows;
      std::vector<acc_t> cache(use_expanded ? 3 * expanded + 2 * g.in[2] : 0);
      acc_t* go_x = cache.data();
      acc_t* y_x = go_x + (use_expanded ? expanded : 0);
      acc_t* lse_x = y_x + (use_expanded ? expanded : 0);
      acc_t* a_row = lse_x + (use_expanded ? expanded : 0);
      acc_t* acc_row = a_row + (use_expanded ? g.in[2] : 0);
      shifted::BackwardScratch<acc_t> scratch(g, shifted_backward);
      for (int64_t plane = begin; plane < end; ++plane) {
        const int64_t n = plane / channels, c = plane % channels;
        const int64_t obase = n * os[0] + c * os[1];
        const shifted::Plane<scalar_t> xv{xp + n * xs[0] + c * xs[1], g.in, xs + 2};
        if (shifted::backward_plane<scalar_t, acc_t>(xv, gop + obase, yp + obase, lp + obase, os, g, ranges,
                                                     gip + n * gs[0] + c * gs[1], gs, scratch))
          continue;
        if (use_expanded)
          expand_plane_outputs<scalar_t, acc_t>(gop + obase, yp + obase, lp + obase, os, g, pw_table.data(),
                                                per_input, go_x, y_x, lse_x);
        for (int64_t id = 0; id < g.in[0]; ++id) {
          for (int64_t ih = 0; ih < g.in[1]; ++ih) {
            // Output rows (pd, ph) whose windows contain this input row.
            dh_offsets.clear();
            dh_rows.clear();
            for (int64_t pd = ranges[0][id].lo; pd < ranges[0][id].hi; ++pd) {
              if (!window_hits(id, pd, g.stride[0], g.pad[0], g.dilation[0])) continue;
              for (int64_t ph = ranges[1][ih].lo; ph < ranges[1][ih].hi; ++ph) {
                if (!window_hits(ih, ph, g.stride[1], g.pad[1], g.dilation[1])) continue;
                dh_offsets.push_back(obase + pd * os[2] + ph * os[3]);
                dh_rows.push_back(pd * g.out[1] + ph);
              }
            }
            const scalar_t* x_row = xp + n * xs[0] + c * xs[1] + id * xs[2] + ih * xs[3];
            scalar_t* g_row = gip + n * gs[0] + c * gs[1] + id * gs[2] + ih * gs[3];
            if (use_expanded) {
              for (int64_t iw = 0; iw < g.in[2]; ++iw) a_row[iw] = static_cast<acc_t>(x_row[iw * xs[4]]);
              backward_row_expanded<acc_t>(a_row, g.in[2], dh_rows.data(), static_cast<int64_t>(dh_rows.size()),
                                           per_input, go_x, y_x, lse_x, acc_row);
              for (int64_t iw = 0; iw < g.in[2]; ++iw) g_row[iw * gs[4]] = static_cast<scalar_t>(acc_row[iw]);
              continue;
            }
            for (int64_t iw = 0; iw < g.in[2]; iw += kLanes) {
              backward_lanes<scalar_t, acc_t>(x_row, xs[4], iw, std::min(kLanes, g.in[2] - iw), dh_offsets.data(),
                                              static_cast<int64_t>(dh_offsets.size()), pw_table.data(), per_input,
                                              gop, yp, lp, os[4], g_row, gs[4]);
            }
          }
        }
      }
    });
  });
  return grad_in;
}

}  // namespace softpool
