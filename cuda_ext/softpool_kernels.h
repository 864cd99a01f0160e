// The CUDA kernels' per-thread code, shared by softpool_cuda.cu (on the device)
// and softpool_emulated.cpp (the same functions on the host, over the whole
// launch grid, for CPU tensors: SOFTPOOL_VIDEO_CPU_KERNEL=cuda-emulated).
//
// A kernel is a thin launcher around a grid-stride loop (forward_grid_thread,
// backward_grid_thread) that calls one per-thread function of the flat index:
// forward_thread (one output) or backward_thread (one input), which unravel the
// index for contiguous or channels-last layouts and run the shared math of
// softpool_math.h. Everything here is __host__ __device__ and free of CUDA
// headers, so the index arithmetic the GPU runs is the arithmetic the CPU tests run.
#pragma once

#include <cstdint>

#include "softpool_math.h"

namespace softpool {
namespace kernels {

struct Strides5 {
  int64_t n, c, d, h, w;
};

// Logical coordinates of a linear index; channels vary fastest for
// channels-last tensors so that neighbouring threads touch neighbouring memory.
struct Coord {
  int64_t n, c, d, h, w;
};

SP_HD Coord unravel(int64_t idx, int64_t C, int64_t D, int64_t H, int64_t W, bool channels_last) {
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

// Kernel arguments (passed by value to the CUDA kernels). Strides are those of
// the 5-d views; output-shaped tensors (y, lse, grad_out) share `os`.
template <typename scalar_t, typename acc_t>
struct ForwardParams {
  const scalar_t* __restrict__ x;
  scalar_t* __restrict__ y;
  acc_t* __restrict__ lse;
  PoolGeometry g;
  int64_t C;
  int64_t total;  // outputs: one thread index per output
  Strides5 xs, os;
  bool channels_last;
};

template <typename scalar_t, typename acc_t>
struct BackwardParams {
  const scalar_t* __restrict__ x;
  const scalar_t* __restrict__ grad_out;
  const scalar_t* __restrict__ y;
  const acc_t* __restrict__ lse;
  scalar_t* __restrict__ grad_in;
  PoolGeometry g;
  int64_t C;
  int64_t total;  // inputs: one thread index per input
  Strides5 xs, gs, os;
  bool channels_last;
};

// Forward of the output with flat index idx (in the output's memory order).
template <typename scalar_t, typename acc_t>
SP_HD void forward_thread(int64_t idx, const ForwardParams<scalar_t, acc_t>& a) {
  const PoolGeometry& g = a.g;
  const Coord p = unravel(idx, a.C, g.out[0], g.out[1], g.out[2], a.channels_last);
  const Span sd = window_span(p.d, g.in[0], g.kernel[0], g.stride[0], g.pad[0], g.dilation[0]);
  const Span sh = window_span(p.h, g.in[1], g.kernel[1], g.stride[1], g.pad[1], g.dilation[1]);
  const Span sw = window_span(p.w, g.in[2], g.kernel[2], g.stride[2], g.pad[2], g.dilation[2]);
  const int64_t o = p.n * a.os.n + p.c * a.os.c + p.d * a.os.d + p.h * a.os.h + p.w * a.os.w;
  forward_window<scalar_t, acc_t>(a.x + p.n * a.xs.n + p.c * a.xs.c, a.xs.d, a.xs.h, a.xs.w, sd, sh, sw,
                                  a.y + o, a.lse + o);
}

// Gradient of the input with flat index idx (in the input's memory order): a
// gather over the windows that contain it, no atomics, fixed order.
template <typename scalar_t, typename acc_t>
SP_HD void backward_thread(int64_t idx, const BackwardParams<scalar_t, acc_t>& a) {
  const PoolGeometry& g = a.g;
  const Coord p = unravel(idx, a.C, g.in[0], g.in[1], g.in[2], a.channels_last);
  const OutRange rd = covering_outputs(p.d, g.out[0], g.kernel[0], g.stride[0], g.pad[0], g.dilation[0]);
  const OutRange rh = covering_outputs(p.h, g.out[1], g.kernel[1], g.stride[1], g.pad[1], g.dilation[1]);
  const OutRange rw = covering_outputs(p.w, g.out[2], g.kernel[2], g.stride[2], g.pad[2], g.dilation[2]);
  const acc_t v = static_cast<acc_t>(a.x[p.n * a.xs.n + p.c * a.xs.c + p.d * a.xs.d + p.h * a.xs.h + p.w * a.xs.w]);
  const int64_t obase = p.n * a.os.n + p.c * a.os.c;
  const acc_t grad = backward_input<scalar_t, acc_t>(v, p.d, p.h, p.w, g, rd, rh, rw, a.grad_out + obase,
                                                     a.y + obase, a.lse + obase, a.os.d, a.os.h, a.os.w);
  a.grad_in[p.n * a.gs.n + p.c * a.gs.c + p.d * a.gs.d + p.h * a.gs.h + p.w * a.gs.w] = static_cast<scalar_t>(grad);
}

// A 1-d launch: `blocks` blocks of `threads` threads.
struct LaunchDims {
  int64_t blocks;
  int64_t threads;
};

// The grid-stride loop of thread `thread` of block `block`: the CUDA kernels
// pass blockIdx.x, threadIdx.x and their own gridDim.x / blockDim.x; the
// emulation runs it for every (block, thread) of the same launch.
template <typename scalar_t, typename acc_t>
SP_HD void forward_grid_thread(int64_t block, int64_t thread, LaunchDims l, const ForwardParams<scalar_t, acc_t>& a) {
  for (int64_t idx = block * l.threads + thread; idx < a.total; idx += l.threads * l.blocks)
    forward_thread<scalar_t, acc_t>(idx, a);
}

template <typename scalar_t, typename acc_t>
SP_HD void backward_grid_thread(int64_t block, int64_t thread, LaunchDims l,
                                const BackwardParams<scalar_t, acc_t>& a) {
  for (int64_t idx = block * l.threads + thread; idx < a.total; idx += l.threads * l.blocks)
    backward_thread<scalar_t, acc_t>(idx, a);
}

constexpr int64_t kThreads = 256;
constexpr int64_t kBlocksPerSM = 32;

// Launch size for `total` indices on a device with `sm_count` multiprocessors:
// one thread per index up to kBlocksPerSM blocks per SM, then grid-stride.
inline LaunchDims launch_dims(int64_t total, int64_t sm_count) {
  const int64_t max_blocks = (sm_count > 0 ? sm_count : 1) * kBlocksPerSM;
  int64_t blocks = (total + kThreads - 1) / kThreads;
  if (blocks > max_blocks) blocks = max_blocks;
  if (blocks < 1) blocks = 1;
  return LaunchDims{blocks, kThreads};
}

}  // namespace kernels
}  // namespace softpool
