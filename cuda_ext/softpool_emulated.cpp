// The CUDA kernels run on the CPU: the per-thread functions of
// softpool_kernels.h, over the launch grid the CUDA launcher computes
// (softpool_launch.h), every (block, thread) running its grid-stride loop.
// Blocks run in parallel (at::parallel_for); every index is written by exactly
// one thread, as on the device. Selected for CPU tensors with
// SOFTPOOL_VIDEO_CPU_KERNEL=cuda-emulated (see softpool.cpp): slow, for tests;
// it exercises the index arithmetic the GPU would run. The only difference from
// the device is the float exp/log (fast_math.h here, CUDA's libdevice there).
#include <ATen/Parallel.h>

#include <limits>

#include "softpool_launch.h"

namespace softpool {

namespace {

using kernels::BackwardParams;
using kernels::ForwardParams;
using kernels::LaunchDims;

struct EmulatedLauncher {
  int64_t sms;
  int64_t index_limit;

  int64_t sm_count() const { return sms; }

  int64_t index32_limit() const { return index_limit; }

  // Outputs start as NaN so that an index no thread writes cannot pass a test.
  void prepare_output(at::Tensor& t) const { t.fill_(std::numeric_limits<double>::quiet_NaN()); }

  template <typename scalar_t, typename acc_t, typename I>
  void forward(LaunchDims l, const ForwardParams<scalar_t, acc_t, I>& p) const {
    at::parallel_for(0, l.blocks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t block = begin; block < end; ++block)
        for (int64_t thread = 0; thread < l.threads; ++thread)
          kernels::forward_grid_thread<scalar_t, acc_t, I>(static_cast<I>(block), static_cast<I>(thread), l, p);
    });
  }

  template <typename scalar_t, typename acc_t, typename I>
  void backward(LaunchDims l, const BackwardParams<scalar_t, acc_t, I>& p) const {
    at::parallel_for(0, l.blocks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t block = begin; block < end; ++block)
        for (int64_t thread = 0; thread < l.threads; ++thread)
          kernels::backward_grid_thread<scalar_t, acc_t, I>(static_cast<I>(block), static_cast<I>(thread), l, p);
    });
  }
};

}  // namespace

std::tuple<at::Tensor, at::Tensor> forward_emulated(const at::Tensor& x, at::IntArrayRef kernel_size,
                                                    at::IntArrayRef stride, at::IntArrayRef padding,
                                                    at::IntArrayRef dilation, bool ceil_mode, int64_t sm_count,
                                                    int64_t index32_limit) {
  return kernels::launch_forward(EmulatedLauncher{sm_count, index32_limit}, x, kernel_size, stride, padding, dilation, ceil_mode);
}

at::Tensor backward_emulated(const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& out,
                             const at::Tensor& lse, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                             at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode, int64_t sm_count,
                             int64_t index32_limit) {
  return kernels::launch_backward(EmulatedLauncher{sm_count, index32_limit}, grad_out, x, out, lse, kernel_size, stride, padding,
                                  dilation, ceil_mode);
}

}  // namespace softpool
