// Division by a divisor fixed for a whole launch (a size, a stride, a dilation).
//
// The kernels unravel a flat index into (n, c, d, h, w) and find window bounds by
// dividing by such values once or more per thread. On a GPU a 64-bit division is a
// call of a long software routine and a 32-bit one a dozen instructions; with the
// divisor known in advance, a 32-bit quotient is one multiply-high, an add and a
// shift (the round-up method of Granlund and Montgomery, "Division by invariant
// integers using multiplication", 1994). The host computes the magic number.
//
// FastDivider: numerators in [0, 2^31), divisors in [1, 2^31). PlainDivider: any
// numerator, ordinary division (the 64-bit path and the CPU kernels).
#pragma once

#include <cstdint>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define SP_DIV_HD __host__ __device__ __forceinline__
#else
#define SP_DIV_HD inline
#endif

namespace softpool {

template <typename I>
struct PlainDivider {
  I d;

  PlainDivider() = default;
  SP_DIV_HD explicit PlainDivider(I divisor) : d(divisor) {}
  SP_DIV_HD I value() const { return d; }
  SP_DIV_HD I div(I n) const { return n / d; }
};

struct FastDivider {
  int32_t d;
  uint32_t magic;
  uint32_t shift;

  FastDivider() = default;
  // Host only (a kernel argument): shift = ceil(log2 d), magic = 2^32 (2^shift - d) / d + 1.
  explicit FastDivider(int32_t divisor) : d(divisor), shift(0) {
    while ((int64_t{1} << shift) < divisor) ++shift;
    magic = static_cast<uint32_t>(((uint64_t{1} << 32) * ((uint64_t{1} << shift) - divisor)) / divisor + 1);
  }
  SP_DIV_HD int32_t value() const { return d; }
  // floor(n / d) = (mulhi(n, magic) + n) >> shift; mulhi(n, magic) < n, so the sum fits 32 bits.
  SP_DIV_HD int32_t div(int32_t n) const {
    const uint32_t u = static_cast<uint32_t>(n);
#if defined(__CUDA_ARCH__)
    const uint32_t hi = __umulhi(u, magic);
#else
    const uint32_t hi = static_cast<uint32_t>((static_cast<uint64_t>(u) * magic) >> 32);
#endif
    return static_cast<int32_t>((hi + u) >> shift);
  }
};

// The divider the kernels use for an index type: fast for 32-bit indices.
template <typename I>
struct DividerFor {
  using type = PlainDivider<I>;
};
template <>
struct DividerFor<int32_t> {
  using type = FastDivider;
};
template <typename I>
using Divider = typename DividerFor<I>::type;

}  // namespace softpool
