// Host side of the CUDA kernels: argument checks, layouts, allocation, dtype
// dispatch and launch size, shared by softpool_cuda.cu (which launches the
// kernels) and softpool_emulated.cpp (which runs the same per-thread code over
// the same launch grid on the CPU). Only the Launcher differs:
//
//   struct Launcher {
//     int64_t sm_count() const;                  // multiprocessors: sizes the grid
//     int64_t index32_limit() const;             // 32-bit indices when the launch's indices stay below it
//     void prepare_output(at::Tensor&) const;    // emulation: poison, so an index no thread writes shows
//     template <typename scalar_t, typename acc_t, typename I>
//     void forward(kernels::LaunchDims, const kernels::ForwardParams<scalar_t, acc_t, I>&) const;
//     template <typename scalar_t, typename acc_t, typename I>
//     void backward(kernels::LaunchDims, const kernels::BackwardParams<scalar_t, acc_t, I>&) const;
//   };
#pragma once

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>

#include <algorithm>
#include <tuple>

#include "softpool.h"
#include "softpool_kernels.h"

namespace softpool {
namespace kernels {

template <typename I>
Strides5<I> strides_of(const at::Tensor& t5) {
  return {static_cast<I>(t5.stride(0)), static_cast<I>(t5.stride(1)), static_cast<I>(t5.stride(2)),
          static_cast<I>(t5.stride(3)), static_cast<I>(t5.stride(4))};
}

template <typename I>
KernelGeometry<I> kernel_geometry(const PoolGeometry& g) {
  KernelGeometry<I> k;
  for (int i = 0; i < 3; ++i) {
    k.in[i] = static_cast<I>(g.in[i]);
    k.out[i] = static_cast<I>(g.out[i]);
    k.kernel[i] = static_cast<I>(g.kernel[i]);
    k.pad[i] = static_cast<I>(g.pad[i]);
    k.stride[i] = Divider<I>(static_cast<I>(g.stride[i]));
    k.dilation[i] = Divider<I>(static_cast<I>(g.dilation[i]));
  }
  return k;
}

// The dividers of a flat index's dims (all >= 1: an empty tensor returns before any launch).
template <typename I>
Unravel<I> unravel_over(int64_t C, const int64_t* dhw, bool channels_last) {
  return {Divider<I>(static_cast<I>(C)), Divider<I>(static_cast<I>(dhw[0])), Divider<I>(static_cast<I>(dhw[1])),
          Divider<I>(static_cast<I>(dhw[2])), channels_last};
}

// Whether every index the launch computes fits in 32 bits: each tensor's elements
// (its offsets, all layouts being dense), the geometry (kernel span, padding) and the
// grid-stride loop's last step past the end.
inline bool fits_32bit(int64_t limit, const at::Tensor& x, const at::Tensor& out, const PoolGeometry& g,
                       const LaunchDims& dims) {
  int64_t largest = std::max(x.numel(), out.numel()) + dims.blocks * dims.threads;
  for (int i = 0; i < 3; ++i)
    largest = std::max(largest, g.in[i] + 2 * g.pad[i] + g.dilation[i] * g.kernel[i] + g.stride[i] * g.out[i]);
  return largest < limit;
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
  const bool index32 = fits_32bit(launcher.index32_limit(), x, out, g, dims);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "softpool_forward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    auto launch = [&](auto index_zero) {
      using I = decltype(index_zero);
      ForwardParams<scalar_t, acc_t, I> p;
      p.x = x5.const_data_ptr<scalar_t>();
      p.y = o5.data_ptr<scalar_t>();
      p.lse = lse.data_ptr<acc_t>();  // same shape and layout as out, so same strides
      p.g = kernel_geometry<I>(g);
      p.outputs = unravel_over<I>(x5.size(1), g.out, is_channels_last(b.format));
      p.total = static_cast<I>(total);
      p.xs = strides_of<I>(x5);
      p.os = strides_of<I>(o5);
      launcher.template forward<scalar_t, acc_t, I>(dims, p);
    };
    index32 ? launch(int32_t{0}) : launch(int64_t{0});
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
  const bool index32 = fits_32bit(launcher.index32_limit(), x, out, g, dims);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "softpool_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    auto launch = [&](auto index_zero) {
      using I = decltype(index_zero);
      BackwardParams<scalar_t, acc_t, I> p;
      p.x = x5.const_data_ptr<scalar_t>();
      p.grad_out = go5.const_data_ptr<scalar_t>();
      p.y = out.const_data_ptr<scalar_t>();
      p.lse = lse.const_data_ptr<acc_t>();
      p.grad_in = gi5.data_ptr<scalar_t>();
      p.g = kernel_geometry<I>(g);
      p.inputs = unravel_over<I>(x5.size(1), g.in, is_channels_last(b.format));
      p.total = static_cast<I>(total);
      p.xs = strides_of<I>(x5);
      p.gs = strides_of<I>(gi5);
      p.os = strides_of<I>(go5);
      launcher.template backward<scalar_t, acc_t, I>(dims, p);
    };
    index32 ? launch(int32_t{0}) : launch(int64_t{0});
  });
  return grad_in;
}

}  // namespace kernels
}  // namespace softpool
