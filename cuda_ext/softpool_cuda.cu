// CUDA kernels: the shared math of softpool_math.h in grid-stride loops, one
// thread per output (forward) or per input (backward). Only indexing and
// launch configuration live here.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "softpool.h"

namespace softpool {

namespace {

struct Strides5 {
  int64_t n, c, d, h, w;
};

Strides5 strides_of(const at::Tensor& t5) {
  return {t5.stride(0), t5.stride(1), t5.stride(2), t5.stride(3), t5.stride(4)};
}

// Logical coordinates of a linear index; channels vary fastest for
// channels-last tensors so that neighbouring threads touch neighbouring memory.
struct Coord {
  int64_t n, c, d, h, w;
};

__device__ __forceinline__ Coord unravel(int64_t idx, int64_t C, int64_t D, int64_t H, int64_t W,
                                         bool channels_last) {
  Coord p;
  if (channels_last) {
    p.c = idx % C; idx /= C;
    p.w = idx % W; idx /= W;
    p.h = idx % H; idx /= H;
    p.d = idx % D; p.n = idx / D;
  } else {
    p.w = idx % W; idx /= W;
    p.h = idx % H; idx /= H;
    p.d = idx % D; idx /= D;
    p.c = idx % C; p.n = idx / C;
  }
  return p;
}

template <typename scalar_t, typename acc_t>
__global__ void forward_kernel(const scalar_t* __restrict__ x, scalar_t* __restrict__ y, acc_t* __restrict__ lse,
                               PoolGeometry g, int64_t C, int64_t total, Strides5 xs, Strides5 os,
                               bool channels_last) {
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const Coord p = unravel(idx, C, g.out[0], g.out[1], g.out[2], channels_last);
    const Span sd = window_span(p.d, g.in[0], g.kernel[0], g.stride[0], g.pad[0], g.dilation[0]);
    const Span sh = window_span(p.h, g.in[1], g.kernel[1], g.stride[1], g.pad[1], g.dilation[1]);
    const Span sw = window_span(p.w, g.in[2], g.kernel[2], g.stride[2], g.pad[2], g.dilation[2]);
    const int64_t o = p.n * os.n + p.c * os.c + p.d * os.d + p.h * os.h + p.w * os.w;
    forward_window<scalar_t, acc_t>(x + p.n * xs.n + p.c * xs.c, xs.d, xs.h, xs.w, sd, sh, sw, y + o, lse + o);
  }
}

template <typename scalar_t, typename acc_t>
__global__ void backward_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ grad_out,
                                const scalar_t* __restrict__ y, const acc_t* __restrict__ lse,
                                scalar_t* __restrict__ grad_in, PoolGeometry g, int64_t C, int64_t total,
                                Strides5 xs, Strides5 gs, Strides5 os, bool channels_last) {
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const Coord p = unravel(idx, C, g.in[0], g.in[1], g.in[2], channels_last);
    const OutRange rd = covering_outputs(p.d, g.out[0], g.kernel[0], g.stride[0], g.pad[0], g.dilation[0]);
    const OutRange rh = covering_outputs(p.h, g.out[1], g.kernel[1], g.stride[1], g.pad[1], g.dilation[1]);
    const OutRange rw = covering_outputs(p.w, g.out[2], g.kernel[2], g.stride[2], g.pad[2], g.dilation[2]);
    const acc_t a = static_cast<acc_t>(x[p.n * xs.n + p.c * xs.c + p.d * xs.d + p.h * xs.h + p.w * xs.w]);
    const int64_t obase = p.n * os.n + p.c * os.c;
    const acc_t grad = backward_input<scalar_t, acc_t>(a, p.d, p.h, p.w, g, rd, rh, rw, grad_out + obase,
                                                       y + obase, lse + obase, os.d, os.h, os.w);
    grad_in[p.n * gs.n + p.c * gs.c + p.d * gs.d + p.h * gs.h + p.w * gs.w] = static_cast<scalar_t>(grad);
  }
}

bool is_channels_last(at::MemoryFormat fmt) {
  return fmt == at::MemoryFormat::ChannelsLast || fmt == at::MemoryFormat::ChannelsLast3d;
}

int64_t grid_for(int64_t total, int threads) {
  const int64_t max_blocks = static_cast<int64_t>(at::cuda::getCurrentDeviceProperties()->multiProcessorCount) * 32;
  return std::max<int64_t>(1, std::min<int64_t>((total + threads - 1) / threads, max_blocks));
}

constexpr int kThreads = 256;

std::tuple<at::Tensor, at::Tensor> forward_cuda(const at::Tensor& x_in, at::IntArrayRef kernel_size,
                                                at::IntArrayRef stride, at::IntArrayRef padding,
                                                at::IntArrayRef dilation, bool ceil_mode) {
  const c10::cuda::CUDAGuard guard(x_in.device());
  const PoolGeometry g = make_geometry(x_in, kernel_size, stride, padding, dilation, ceil_mode);
  const int64_t nsp = static_cast<int64_t>(kernel_size.size());
  const auto fmt = x_in.suggest_memory_format();
  const at::Tensor x = x_in.contiguous(fmt);
  const auto shape = output_shape(x, g, nsp);
  at::Tensor out = at::empty(shape, x.options().memory_format(fmt));
  at::Tensor lse = at::empty(shape, x.options().dtype(lse_dtype(x.scalar_type())).memory_format(fmt));
  const int64_t total = out.numel();
  if (total == 0) return {out, lse};
  const at::Tensor x5 = as_5d(x, nsp);
  const at::Tensor o5 = as_5d(out, nsp);
  const auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "softpool_forward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    forward_kernel<scalar_t, acc_t><<<grid_for(total, kThreads), kThreads, 0, stream>>>(
        x5.const_data_ptr<scalar_t>(), o5.data_ptr<scalar_t>(), lse.data_ptr<acc_t>(), g, x5.size(1), total,
        strides_of(x5), strides_of(o5), is_channels_last(fmt));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {out, lse};
}

at::Tensor backward_cuda(const at::Tensor& grad_out_in, const at::Tensor& x_in, const at::Tensor& out_in,
                         const at::Tensor& lse_in, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                         at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode) {
  const c10::cuda::CUDAGuard guard(x_in.device());
  const PoolGeometry g = make_geometry(x_in, kernel_size, stride, padding, dilation, ceil_mode);
  const int64_t nsp = static_cast<int64_t>(kernel_size.size());
  const auto shape = output_shape(x_in, g, nsp);
  TORCH_CHECK(grad_out_in.sizes() == at::IntArrayRef(shape) && out_in.sizes() == at::IntArrayRef(shape) &&
                  lse_in.sizes() == at::IntArrayRef(shape),
              "softpool backward: grad_out, out and lse must have the pooled shape ", shape);
  const auto fmt = x_in.suggest_memory_format();
  const at::Tensor x = x_in.contiguous(fmt);
  const at::Tensor grad_out = grad_out_in.to(x.scalar_type()).contiguous(fmt);
  const at::Tensor out = out_in.contiguous(fmt);
  const at::Tensor lse = lse_in.to(lse_dtype(x.scalar_type())).contiguous(fmt);
  at::Tensor grad_in = at::empty_like(x, fmt);
  const int64_t total = x.numel();
  if (total == 0) return grad_in;
  const at::Tensor x5 = as_5d(x, nsp);
  const at::Tensor gi5 = as_5d(grad_in, nsp);
  const at::Tensor go5 = as_5d(grad_out, nsp);
  const auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "softpool_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    backward_kernel<scalar_t, acc_t><<<grid_for(total, kThreads), kThreads, 0, stream>>>(
        x5.const_data_ptr<scalar_t>(), go5.const_data_ptr<scalar_t>(), out.const_data_ptr<scalar_t>(),
        lse.const_data_ptr<acc_t>(), gi5.data_ptr<scalar_t>(), g, x5.size(1), total, strides_of(x5),
        strides_of(gi5), strides_of(go5), is_channels_last(fmt));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return grad_in;
}

}  // namespace

TORCH_LIBRARY_IMPL(softpool, CUDA, m) {
  m.impl("forward", &forward_cuda);
  m.impl("backward", &backward_cuda);
}

}  // namespace softpool
