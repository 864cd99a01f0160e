// CPU kernels: the shared math of softpool_math.h under at::parallel_for,
// one (n, c) plane per task, with window bounds tabulated once per call.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <vector>

#include "softpool.h"

namespace softpool {

namespace {

int64_t plane_grain(int64_t plane_size) {
  return std::max<int64_t>(1, at::internal::GRAIN_SIZE / std::max<int64_t>(1, plane_size));
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> forward_cpu(const at::Tensor& x_in, at::IntArrayRef kernel_size,
                                               at::IntArrayRef stride, at::IntArrayRef padding,
                                               at::IntArrayRef dilation, bool ceil_mode) {
  const PoolGeometry g = make_geometry(x_in, kernel_size, stride, padding, dilation, ceil_mode);
  const int64_t nsp = static_cast<int64_t>(kernel_size.size());
  const auto fmt = x_in.suggest_memory_format();
  const at::Tensor x = x_in.contiguous(fmt);
  const auto shape = output_shape(x, g, nsp);
  at::Tensor out = at::empty(shape, x.options().memory_format(fmt));
  at::Tensor lse = at::empty(shape, x.options().dtype(lse_dtype(x.scalar_type())).memory_format(fmt));
  if (out.numel() == 0) return {out, lse};

  const at::Tensor x5 = as_5d(x, nsp);
  const at::Tensor o5 = as_5d(out, nsp);
  std::vector<Span> spans[3];
  for (int i = 0; i < 3; ++i) {
    for (int64_t o = 0; o < g.out[i]; ++o)
      spans[i].push_back(window_span(o, g.in[i], g.kernel[i], g.stride[i], g.pad[i], g.dilation[i]));
  }
  const int64_t channels = x5.size(1);
  const int64_t planes = x5.size(0) * channels;
  const int64_t plane_out = g.out[0] * g.out[1] * g.out[2];

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "softpool_forward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* xp = x5.const_data_ptr<scalar_t>();
    scalar_t* yp = o5.data_ptr<scalar_t>();
    acc_t* lp = lse.data_ptr<acc_t>();  // same strides as out
    const auto xs = x5.strides();
    const auto os = o5.strides();
    at::parallel_for(0, planes, plane_grain(plane_out), [&](int64_t begin, int64_t end) {
      for (int64_t plane = begin; plane < end; ++plane) {
        const int64_t n = plane / channels, c = plane % channels;
        const scalar_t* xplane = xp + n * xs[0] + c * xs[1];
        const int64_t obase = n * os[0] + c * os[1];
        for (int64_t od = 0; od < g.out[0]; ++od) {
          for (int64_t oh = 0; oh < g.out[1]; ++oh) {
            for (int64_t ow = 0; ow < g.out[2]; ++ow) {
              const int64_t o = obase + od * os[2] + oh * os[3] + ow * os[4];
              forward_window<scalar_t, acc_t>(xplane, xs[2], xs[3], xs[4], spans[0][od], spans[1][oh],
                                              spans[2][ow], yp + o, lp + o);
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
  const PoolGeometry g = make_geometry(x_in, kernel_size, stride, padding, dilation, ceil_mode);
  const int64_t nsp = static_cast<int64_t>(kernel_size.size());
  const auto shape = output_shape(x_in, g, nsp);
  TORCH_CHECK(grad_out_in.sizes() == at::IntArrayRef(shape) && out_in.sizes() == at::IntArrayRef(shape) &&
                  lse_in.sizes() == at::IntArrayRef(shape),
              "softpool backward: grad_out, out and lse must have the pooled shape ", shape);
  TORCH_CHECK(lse_in.scalar_type() == lse_dtype(x_in.scalar_type()),
              "softpool backward: lse must be ", lse_dtype(x_in.scalar_type()), ", got ", lse_in.scalar_type());
  const auto fmt = x_in.suggest_memory_format();
  const at::Tensor x = x_in.contiguous(fmt);
  // grad_out, out and lse are indexed with one set of strides.
  const at::Tensor grad_out = grad_out_in.to(x.scalar_type()).contiguous(fmt);
  const at::Tensor out = out_in.contiguous(fmt);
  const at::Tensor lse = lse_in.contiguous(fmt);
  at::Tensor grad_in = at::empty_like(x, fmt);
  if (x.numel() == 0) return grad_in;

  const at::Tensor x5 = as_5d(x, nsp);
  const at::Tensor gi5 = as_5d(grad_in, nsp);
  const at::Tensor go5 = as_5d(grad_out, nsp);
  std::vector<OutRange> ranges[3];
  for (int i = 0; i < 3; ++i) {
    for (int64_t p = 0; p < g.in[i]; ++p)
      ranges[i].push_back(covering_outputs(p, g.out[i], g.kernel[i], g.stride[i], g.pad[i], g.dilation[i]));
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
    const auto xs = x5.strides();
    const auto gs = gi5.strides();  // empty_like keeps x's strides, but do not rely on it
    const auto os = go5.strides();
    at::parallel_for(0, planes, plane_grain(plane_in), [&](int64_t begin, int64_t end) {
      for (int64_t plane = begin; plane < end; ++plane) {
        const int64_t n = plane / channels, c = plane % channels;
        const scalar_t* xplane = xp + n * xs[0] + c * xs[1];
        scalar_t* gplane = gip + n * gs[0] + c * gs[1];
        const int64_t obase = n * os[0] + c * os[1];
        for (int64_t id = 0; id < g.in[0]; ++id) {
          for (int64_t ih = 0; ih < g.in[1]; ++ih) {
            for (int64_t iw = 0; iw < g.in[2]; ++iw) {
              const acc_t a = static_cast<acc_t>(xplane[id * xs[2] + ih * xs[3] + iw * xs[4]]);
              const acc_t grad = backward_input<scalar_t, acc_t>(
                  a, id, ih, iw, g, ranges[0][id], ranges[1][ih], ranges[2][iw], gop + obase, yp + obase,
                  lp + obase, os[2], os[3], os[4]);
              gplane[id * gs[2] + ih * gs[3] + iw * gs[4]] = static_cast<scalar_t>(grad);
            }
          }
        }
      }
    });
  });
  return grad_in;
}

}  // namespace softpool
