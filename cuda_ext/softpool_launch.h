// Host side of the CUDA kernels: argument checks, layouts, allocation, dtype
// dispatch and launch size, shared by softpool_cuda.cu (which launches the
// kernels) and softpool_emulated.cpp (which runs the same per-thread code over
// the same launch grid on the CPU). Only the Launcher differs:
//
//   struct Launcher {
//     int64_t sm_count() const;                  // multiprocessors: sizes the grid
//     void prepare_output(at::Tensor&) const;    // emulation: poison, so an index no thread writes shows
//     template <typename scalar_t, typename acc_t>
//     void forward(kernels::LaunchDims, const kernels::ForwardParams<scalar_t, acc_t>&) const;
//     template <typename scalar_t, typename acc_t>
//     void backward(kernels::LaunchDims, const kernels::BackwardParams<scalar_t, acc_t>&) const;
//   };
#pragma once

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>

#include <tuple>

#include "softpool.h"
#include "softpool_kernels.h"

namespace softpool {
namespace kernels {

inline Strides5 strides_of(const at::Tensor& t5) {
  return {t5.stride(0), t5.stride(1), t5.stride(2), t5.stride(3), t5.stride(4)};
}

template <typename Launcher>
std::tuple<at::Tensor, at::Tensor> launch_forward(const Launcher& launcher, const at::Tensor& x_in,
                                                  at::IntArrayRef kernel_size, at::IntArrayRef stride,
                                                  at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode) {
  ForwardBuffers b = forward_buffers(x_in, kernel_size, stride, padding, dilation, ceil_mode);
  const at::Tensor &x = b.x, &out = b.out, &lse = b.lse;
  const PoolGeometry& g = b.g;
  const int64_t total = out.numel();
  if (total == 0) return {out, lse};
  launcher.prepare_output(b.out);
  launcher.prepare_output(b.lse);
  const at::Tensor x5 = as_5d(x, b.spatial_dims);
  const at::Tensor o5 = as_5d(out, b.spatial_dims);
  const LaunchDims dims = launch_dims(total, launcher.sm_count());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "softpool_forward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    ForwardParams<scalar_t, acc_t> p;
    p.x = x5.const_data_ptr<scalar_t>();
    p.y = o5.data_ptr<scalar_t>();
    p.lse = lse.data_ptr<acc_t>();  // same shape and layout as out, so same strides
    p.g = g;
    p.C = x5.size(1);
    p.total = total;
    p.xs = strides_of(x5);
    p.os = strides_of(o5);
    p.channels_last = is_channels_last(b.format);
    launcher.template forward<scalar_t, acc_t>(dims, p);
  });
  return {out, lse};
}

template <typename Launcher>
at::Tensor launch_backward(const Launcher& launcher, const at::Tensor& grad_out_in, const at::Tensor& x_in,
                           const at::Tensor& out_in, const at::Tensor& lse_in, at::IntArrayRef kernel_size,
                           at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
                           bool ceil_mode) {
  BackwardBuffers b =
      backward_buffers(grad_out_in, x_in, out_in, lse_in, kernel_size, stride, padding, dilation, ceil_mode);
  const at::Tensor &x = b.x, &out = b.out, &lse = b.lse;
  const at::Tensor& grad_in = b.grad_in;
  const PoolGeometry& g = b.g;
  const int64_t total = x.numel();
  if (total == 0) return grad_in;
  launcher.prepare_output(b.grad_in);
  const at::Tensor x5 = as_5d(x, b.spatial_dims);
  const at::Tensor gi5 = as_5d(grad_in, b.spatial_dims);
  const at::Tensor go5 = as_5d(b.grad_out, b.spatial_dims);
  const LaunchDims dims = launch_dims(total, launcher.sm_count());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "softpool_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    BackwardParams<scalar_t, acc_t> p;
    p.x = x5.const_data_ptr<scalar_t>();
    p.grad_out = go5.const_data_ptr<scalar_t>();
    p.y = out.const_data_ptr<scalar_t>();
    p.lse = lse.const_data_ptr<acc_t>();
    p.grad_in = gi5.data_ptr<scalar_t>();
    p.g = g;
    p.C = x5.size(1);
    p.total = total;
    p.xs = strides_of(x5);
    p.gs = strides_of(gi5);
    p.os = strides_of(go5);
    p.channels_last = is_channels_last(b.format);
    launcher.template backward<scalar_t, acc_t>(dims, p);
  });
  return grad_in;
}

}  // namespace kernels
}  // namespace softpool
