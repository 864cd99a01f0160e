// CUDA kernels: thin launchers around the per-thread code of softpool_kernels.h
// (a grid-stride loop calling forward_thread / backward_thread: one thread per
// output in forward, one per input in backward). Host-side preparation and the
// launch size are shared with the CPU emulation of these kernels
// (softpool_launch.h, softpool_emulated.cpp); only the launch itself lives here.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <limits>

#include "softpool_launch.h"

namespace softpool {

namespace {

using kernels::BackwardParams;
using kernels::ForwardParams;
using kernels::LaunchDims;

// __launch_bounds__: the launcher always uses kThreads threads per block, and the bound
// lets the compiler budget registers for it: at least 4 resident blocks per SM (64
// registers a thread, 50% occupancy) on the 32-bit path with a float accumulator; 2 (128)
// for fp64 (which spills under 64) and on the rare 64-bit path.
template <typename acc_t, typename I>
constexpr int kMinBlocksPerSM = sizeof(I) == 4 && sizeof(acc_t) == 4 ? 4 : 2;

template <typename scalar_t, typename acc_t, typename I>
__global__ void __launch_bounds__(kernels::kThreads, kMinBlocksPerSM<acc_t, I>)
    forward_kernel(const ForwardParams<scalar_t, acc_t, I> p) {
  kernels::forward_grid_thread<scalar_t, acc_t, I>(static_cast<I>(blockIdx.x), static_cast<I>(threadIdx.x),
                                                   LaunchDims{gridDim.x, blockDim.x}, p);
}

template <typename scalar_t, typename acc_t, typename I>
__global__ void __launch_bounds__(kernels::kThreads, kMinBlocksPerSM<acc_t, I>)
    backward_kernel(const BackwardParams<scalar_t, acc_t, I> p) {
  kernels::backward_grid_thread<scalar_t, acc_t, I>(static_cast<I>(blockIdx.x), static_cast<I>(threadIdx.x),
                                                    LaunchDims{gridDim.x, blockDim.x}, p);
}

struct CudaLauncher {
  int64_t sm_count() const { return at::cuda::getCurrentDeviceProperties()->multiProcessorCount; }

  int64_t index32_limit() const { return std::numeric_limits<int32_t>::max(); }

  void prepare_output(at::Tensor&) const {}

  template <typename scalar_t, typename acc_t, typename I>
  void forward(LaunchDims l, const ForwardParams<scalar_t, acc_t, I>& p) const {
    forward_kernel<scalar_t, acc_t, I>
        <<<static_cast<unsigned>(l.blocks), static_cast<unsigned>(l.threads), 0, at::cuda::getCurrentCUDAStream()>>>(p);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }

  template <typename scalar_t, typename acc_t, typename I>
  void backward(LaunchDims l, const BackwardParams<scalar_t, acc_t, I>& p) const {
    backward_kernel<scalar_t, acc_t, I>
        <<<static_cast<unsigned>(l.blocks), static_cast<unsigned>(l.threads), 0, at::cuda::getCurrentCUDAStream()>>>(p);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
};

std::tuple<at::Tensor, at::Tensor> forward_cuda(const at::Tensor& x, at::IntArrayRef kernel_size,
                                                at::IntArrayRef stride, at::IntArrayRef padding,
                                                at::IntArrayRef dilation, bool ceil_mode) {
  const c10::cuda::CUDAGuard guard(x.device());
  return kernels::launch_forward(CudaLauncher{}, x, kernel_size, stride, padding, dilation, ceil_mode);
}

at::Tensor backward_cuda(const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& out,
                         const at::Tensor& lse, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                         at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode) {
  const c10::cuda::CUDAGuard guard(x.device());
  return kernels::launch_backward(CudaLauncher{}, grad_out, x, out, lse, kernel_size, stride, padding, dilation,
                                  ceil_mode);
}

}  // namespace

TORCH_LIBRARY_IMPL(softpool, CUDA, m) {
  m.impl("forward", &forward_cuda);
  m.impl("backward", &backward_cuda);
}

}  // namespace softpool
