// Host-side helpers shared by the CPU and CUDA entry points of the softpool ops.
#pragma once

#include <ATen/ATen.h>

#include <tuple>

#include "softpool_math.h"

namespace softpool {

// Checks every argument (naming it in the error) and returns the 3-d geometry
// of the pool; 1-d and 2-d pools get unit leading dims.
PoolGeometry make_geometry(const at::Tensor& x, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                           at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode);

// Output shape (N, C, *pooled) for the given geometry and spatial rank.
std::vector<int64_t> output_shape(const at::Tensor& x, const PoolGeometry& g, int64_t spatial_dims);

// Views a (N, C, *spatial) tensor as (N, C, D, H, W) without copying.
at::Tensor as_5d(const at::Tensor& t, int64_t spatial_dims);

// dtype of the saved log-sum-exp: fp32 for fp16/bf16/fp32 inputs, fp64 for fp64.
at::ScalarType lse_dtype(at::ScalarType input);

// What every forward kernel (CPU, CUDA, emulated) starts from: the checked geometry, the
// input made contiguous in its suggested memory format, and `out` and `lse` allocated with
// the pooled shape in that same format, so that `out` and `lse` share strides.
struct ForwardBuffers {
  PoolGeometry g;
  int64_t spatial_dims;
  at::MemoryFormat format;
  at::Tensor x, out, lse;
};
ForwardBuffers forward_buffers(const at::Tensor& x, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                               at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode);

// Likewise for backward: shapes and the lse dtype checked; x, grad_out, out and lse
// contiguous in x's memory format (grad_out and out in x's dtype), so grad_out, out and
// lse are indexed with one set of strides; `grad_in` allocated like x.
struct BackwardBuffers {
  PoolGeometry g;
  int64_t spatial_dims;
  at::MemoryFormat format;
  at::Tensor x, grad_out, out, lse, grad_in;
};
BackwardBuffers backward_buffers(const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& out,
                                 const at::Tensor& lse, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                                 at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode);

inline bool is_channels_last(at::MemoryFormat fmt) {
  return fmt == at::MemoryFormat::ChannelsLast || fmt == at::MemoryFormat::ChannelsLast3d;
}

std::tuple<at::Tensor, at::Tensor> forward_cpu(const at::Tensor& x, at::IntArrayRef kernel_size,
                                               at::IntArrayRef stride, at::IntArrayRef padding,
                                               at::IntArrayRef dilation, bool ceil_mode);
at::Tensor backward_cpu(const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& out,
                        const at::Tensor& lse, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                        at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode);

// The CUDA kernels' per-thread code run on the CPU over the launch grid of a
// device with `sm_count` multiprocessors (softpool_emulated.cpp), with 32-bit
// indices when every index stays below `index32_limit` (the device's: INT32_MAX).
std::tuple<at::Tensor, at::Tensor> forward_emulated(const at::Tensor& x, at::IntArrayRef kernel_size,
                                                    at::IntArrayRef stride, at::IntArrayRef padding,
                                                    at::IntArrayRef dilation, bool ceil_mode, int64_t sm_count,
                                                    int64_t index32_limit);
at::Tensor backward_emulated(const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& out,
                             const at::Tensor& lse, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                             at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode, int64_t sm_count,
                             int64_t index32_limit);

}  // namespace softpool
