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
// Each function is instantiated for 32-bit and 64-bit indices (see Strides5).
#pragma once

#include <cstdint>

#include "int_divider.h"
#include "softpool_math.h"

namespace softpool {
namespace kernels {

// The kernels index in I = int32_t when every index of the launch fits (the
// launcher checks; FastDivider then replaces each division by a multiply-high),
// otherwise in int64_t.
template <typename I>
struct Strides5 {
  I n, c, d, h, w;
};

// Logical coordinates of a linear index; channels vary fastest for
// channels-last tensors so that neighbouring threads touch neighbouring memory.
template <typename I>
struct Coord {
  I n, c, d, h, w;
};

// The dims a flat index unravels over (C and the spatial sizes it is taken over),
// as dividers computed once on the host.
template <typename I>
struct Unravel {
  Divider<I> c, d, h, w;
  bool channels_last;
};

template <typename I>
SP_HD Coord<I> unravel(I idx, const Unravel<I>& u) {
  Coord<I> p;
  I q;
  if (u.channels_last) {
    q = u.c.div(idx); p.c = idx - q * u.c.value(); idx = q;
    q = u.w.div(idx); p.w = idx - q * u.w.value(); idx = q;
    q = u.h.div(idx); p.h = idx - q * u.h.value(); idx = q;
    q = u.d.div(idx); p.d = idx - q * u.d.value(); p.n = q;
  } else {
    q = u.w.div(idx); p.w = idx - q * u.w.value(); idx = q;
    q = u.h.div(idx); p.h = idx - q * u.h.value(); idx = q;
    q = u.d.div(idx); p.d = idx - q * u.d.value(); idx = q;
    q = u.c.div(idx); p.c = idx - q * u.c.value(); p.n = q;
  }
  return p;
}

// PoolGeometry in the launch's index type, stride and dilation as dividers.
template <typename I>
struct KernelGeometry {
  I in[3], out[3], kernel[3], pad[3];
  Divider<I> stride[3], dilation[3];
};

// Kernel arguments (passed by value to the CUDA kernels). Strides are those of
// the 5-d views; output-shaped tensors (y, lse, grad_out) share `os`.
template <typename scalar_t, typename acc_t, typename I>
struct ForwardParams {
  const scalar_t* __restrict__ x;
  scalar_t* __restrict__ y;
  acc_t* __restrict__ lse;
  KernelGeometry<I> g;
  Unravel<I> outputs;  // over (C, out[0], out[1], out[2])
  I total;             // outputs: one thread index per output
  Strides5<I> xs, os;
};

template <typename scalar_t, typename acc_t, typename I>
struct BackwardParams {
  const scalar_t* __restrict__ x;
  const scalar_t* __restrict__ grad_out;
  const scalar_t* __restrict__ y;
  const acc_t* __restrict__ lse;
  scalar_t* __restrict__ grad_in;
  KernelGeometry<I> g;
  Unravel<I> inputs;  // over (C, in[0], in[1], in[2])
  I total;            // inputs: one thread index per input
  Strides5<I> xs, gs, os;
};

// Forward of the output with flat index idx (in the output's memory order).
template <typename scalar_t, typename acc_t, typename I>
SP_HD void forward_thread(I idx, const ForwardParams<scalar_t, acc_t, I>& a) {
  const KernelGeometry<I>& g = a.g;
  const Coord<I> p = unravel(idx, a.outputs);
  const SpanT<I> sd = window_span(p.d, g.in[0], g.kernel[0], g.stride[0].value(), g.pad[0], g.dilation[0]);
  const SpanT<I> sh = window_span(p.h, g.in[1], g.kernel[1], g.stride[1].value(), g.pad[1], g.dilation[1]);
  const SpanT<I> sw = window_span(p.w, g.in[2], g.kernel[2], g.stride[2].value(), g.pad[2], g.dilation[2]);
  const I o = p.n * a.os.n + p.c * a.os.c + p.d * a.os.d + p.h * a.os.h + p.w * a.os.w;
  forward_window<scalar_t, acc_t, I>(a.x + (p.n * a.xs.n + p.c * a.xs.c), a.xs.d, a.xs.h, a.xs.w, sd, sh, sw,
                                     a.y + o, a.lse + o);
}

// Gradient of the input with flat index idx (in the input's memory order): a
// gather over the windows that contain it, no atomics, fixed order.
template <typename scalar_t, typename acc_t, typename I>
SP_HD void backward_thread(I idx, const BackwardParams<scalar_t, acc_t, I>& a) {
  const KernelGeometry<I>& g = a.g;
  const Coord<I> p = unravel(idx, a.inputs);
  const OutRangeT<I> rd = covering_outputs(p.d, g.out[0], g.kernel[0], g.stride[0], g.pad[0], g.dilation[0].value());
  const OutRangeT<I> rh = covering_outputs(p.h, g.out[1], g.kernel[1], g.stride[1], g.pad[1], g.dilation[1].value());
  const OutRangeT<I> rw = covering_outputs(p.w, g.out[2], g.kernel[2], g.stride[2], g.pad[2], g.dilation[2].value());
  const acc_t v = static_cast<acc_t>(a.x[p.n * a.xs.n + p.c * a.xs.c + p.d * a.xs.d + p.h * a.xs.h + p.w * a.xs.w]);
  const I obase = p.n * a.os.n + p.c * a.os.c;
  const acc_t grad = backward_input<scalar_t, acc_t, I>(v, p.d, p.h, p.w, g, rd, rh, rw, a.grad_out + obase,
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
// emulation runs it for every (block, thread) of the same launch. The launcher
// picks I = int32_t only when total + the grid's size fits, so idx cannot overflow.
template <typename scalar_t, typename acc_t, typename I>
SP_HD void forward_grid_thread(I block, I thread, LaunchDims l, const ForwardParams<scalar_t, acc_t, I>& a) {
  const I step = static_cast<I>(l.threads * l.blocks);
  for (I idx = block * static_cast<I>(l.threads) + thread; idx < a.total; idx += step)
    forward_thread<scalar_t, acc_t, I>(idx, a);
}

template <typename scalar_t, typename acc_t, typename I>
SP_HD void backward_grid_thread(I block, I thread, LaunchDims l, const BackwardParams<scalar_t, acc_t, I>& a) {
  const I step = static_cast<I>(l.threads * l.blocks);
  for (I idx = block * static_cast<I>(l.threads) + thread; idx < a.total; idx += step)
    backward_thread<scalar_t, acc_t, I>(idx, a);
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
