// Op schemas, argument checks and pool geometry; the kernels live in
// softpool_cpu.cpp and softpool_cuda.cu and are registered per dispatch key.
#include <Python.h>
#include <torch/library.h>

#include <atomic>
#include <limits>

#include "softpool.h"

namespace softpool {

namespace {

int64_t pooled_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, bool ceil_mode) {
  const int64_t span = in + 2 * p - d * (k - 1) - 1;
  int64_t out = (ceil_mode ? -floor_div(-span, s) : floor_div(span, s)) + 1;
  // As in max_pool: the last ceil_mode window must start inside the input or left padding.
  if (ceil_mode && out > 0 && (out - 1) * s >= in + p) --out;
  return out;
}

std::vector<int64_t> expand(at::IntArrayRef v, size_t n, const char* name, int64_t fallback) {
  if (v.empty() && fallback >= 0) return std::vector<int64_t>(n, fallback);
  TORCH_CHECK(v.size() == 1 || v.size() == n, "softpool: ", name, " must have 1 or ", n,
              " values for a ", n, "-d pool, got ", v.size());
  return v.size() == 1 ? std::vector<int64_t>(n, v[0]) : v.vec();
}

}  // namespace

PoolGeometry make_geometry(const at::Tensor& x, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                           at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode) {
  const size_t n = kernel_size.size();
  TORCH_CHECK(n >= 1 && n <= 3, "softpool: kernel_size must have 1, 2 or 3 values, got ", n);
  TORCH_CHECK(x.dim() == static_cast<int64_t>(n) + 2, "softpool: input must be (N, C, *spatial) with ",
              n, " spatial dims, got shape ", x.sizes());
  TORCH_CHECK(at::isFloatingType(x.scalar_type()),
              "softpool: input dtype must be float16, bfloat16, float32 or float64, got ", x.scalar_type());
  const auto k = kernel_size.vec();
  const auto s = stride.empty() ? k : expand(stride, n, "stride", -1);
  const auto p = expand(padding, n, "padding", 0);
  const auto d = expand(dilation, n, "dilation", 1);
  PoolGeometry g;
  const int64_t lead = 3 - static_cast<int64_t>(n);
  for (int64_t i = 0; i < 3; ++i) {
    if (i < lead) {
      g.in[i] = g.out[i] = g.kernel[i] = g.stride[i] = g.dilation[i] = 1;
      g.pad[i] = 0;
      continue;
    }
    const size_t j = static_cast<size_t>(i - lead);
    TORCH_CHECK(k[j] > 0, "softpool: kernel_size must be > 0, got ", kernel_size);
    TORCH_CHECK(s[j] > 0, "softpool: stride must be > 0, got ", stride);
    TORCH_CHECK(d[j] > 0, "softpool: dilation must be > 0, got ", dilation);
    TORCH_CHECK(p[j] >= 0 && p[j] <= (d[j] * (k[j] - 1) + 1) / 2, "softpool: padding must be between 0 and ",
                "half the effective kernel size, got padding=", padding, " for kernel_size=", kernel_size,
                " and dilation=", dilation);
    g.in[i] = x.size(static_cast<int64_t>(j) + 2);
    g.kernel[i] = k[j];
    g.stride[i] = s[j];
    g.pad[i] = p[j];
    g.dilation[i] = d[j];
    g.out[i] = pooled_size(g.in[i], k[j], s[j], p[j], d[j], ceil_mode);
    TORCH_CHECK(g.out[i] > 0, "softpool: output would be empty: input size ", g.in[i], " in spatial dim ", j,
                " is too small for kernel_size=", kernel_size, ", dilation=", dilation, ", padding=", padding);
    // A dilated window can step over the whole input; refuse rather than invent a value.
    for (int64_t o = 0; o < g.out[i]; ++o) {
      TORCH_CHECK(window_span(o, g.in[i], k[j], s[j], p[j], d[j]).count > 0,
                  "softpool: window ", o, " of spatial dim ", j, " covers only padding (kernel_size=",
                  kernel_size, ", dilation=", dilation, ", padding=", padding, ")");
    }
  }
  return g;
}

std::vector<int64_t> output_shape(const at::Tensor& x, const PoolGeometry& g, int64_t spatial_dims) {
  std::vector<int64_t> shape = {x.size(0), x.size(1)};
  for (int64_t i = 3 - spatial_dims; i < 3; ++i) shape.push_back(g.out[i]);
  return shape;
}

at::Tensor as_5d(const at::Tensor& t, int64_t spatial_dims) {
  at::Tensor v = t;
  for (int64_t i = spatial_dims; i < 3; ++i) v = v.unsqueeze(2);
  return v;
}

at::ScalarType lse_dtype(at::ScalarType input) {
  return input == at::kDouble ? at::kDouble : at::kFloat;
}

ForwardBuffers forward_buffers(const at::Tensor& x, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                               at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode) {
  ForwardBuffers b;
  b.g = make_geometry(x, kernel_size, stride, padding, dilation, ceil_mode);
  b.spatial_dims = static_cast<int64_t>(kernel_size.size());
  b.format = x.suggest_memory_format();
  b.x = x.contiguous(b.format);
  const auto shape = output_shape(b.x, b.g, b.spatial_dims);
  b.out = at::empty(shape, b.x.options().memory_format(b.format));
  b.lse = at::empty(shape, b.x.options().dtype(lse_dtype(b.x.scalar_type())).memory_format(b.format));
  return b;
}

BackwardBuffers backward_buffers(const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& out,
                                 const at::Tensor& lse, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                                 at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode) {
  BackwardBuffers b;
  b.g = make_geometry(x, kernel_size, stride, padding, dilation, ceil_mode);
  b.spatial_dims = static_cast<int64_t>(kernel_size.size());
  const auto shape = output_shape(x, b.g, b.spatial_dims);
  TORCH_CHECK(grad_out.sizes() == at::IntArrayRef(shape) && out.sizes() == at::IntArrayRef(shape) &&
                  lse.sizes() == at::IntArrayRef(shape),
              "softpool backward: grad_out, out and lse must have the pooled shape ", shape);
  TORCH_CHECK(lse.scalar_type() == lse_dtype(x.scalar_type()),
              "softpool backward: lse must be ", lse_dtype(x.scalar_type()), ", got ", lse.scalar_type());
  b.format = x.suggest_memory_format();
  b.x = x.contiguous(b.format);
  b.grad_out = grad_out.to(b.x.scalar_type()).contiguous(b.format);
  b.out = out.to(b.x.scalar_type()).contiguous(b.format);
  b.lse = lse.contiguous(b.format);
  b.grad_in = at::empty_like(b.x, b.format);
  return b;
}

TORCH_LIBRARY(softpool, m) {
  m.def("forward(Tensor x, int[] kernel_size, int[] stride, int[] padding, int[] dilation, bool ceil_mode)"
        " -> (Tensor, Tensor)");
  m.def("backward(Tensor grad_out, Tensor x, Tensor out, Tensor lse, int[] kernel_size, int[] stride,"
        " int[] padding, int[] dilation, bool ceil_mode) -> Tensor");
}

// Which kernels run for CPU tensors: the native CPU kernels (softpool_cpu.cpp)
// or the CUDA kernels' per-thread code emulated on the CPU (softpool_emulated.cpp).
// Set from Python (softpool_video._extension, SOFTPOOL_VIDEO_CPU_KERNEL) through
// _C._set_cpu_kernel; torch.ops.softpool.* and their fake kernels are the same either way.
enum CpuKernel : int { kNative = 0, kCudaEmulated = 1 };

namespace {

std::atomic<int> cpu_kernel{kNative};
std::atomic<int64_t> emulated_sm_count{1};
// The emulation picks 32-bit indices below this limit, as the device does below INT32_MAX;
// 0 makes it take the 64-bit path on any size (tests of that path).
std::atomic<int64_t> emulated_index32_limit{std::numeric_limits<int32_t>::max()};

std::tuple<at::Tensor, at::Tensor> forward_cpu_selected(const at::Tensor& x, at::IntArrayRef kernel_size,
                                                        at::IntArrayRef stride, at::IntArrayRef padding,
                                                        at::IntArrayRef dilation, bool ceil_mode) {
  if (cpu_kernel.load() == kCudaEmulated)
    return forward_emulated(x, kernel_size, stride, padding, dilation, ceil_mode, emulated_sm_count.load(),
                            emulated_index32_limit.load());
  return forward_cpu(x, kernel_size, stride, padding, dilation, ceil_mode);
}

at::Tensor backward_cpu_selected(const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& out,
                                 const at::Tensor& lse, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                                 at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode) {
  if (cpu_kernel.load() == kCudaEmulated)
    return backward_emulated(grad_out, x, out, lse, kernel_size, stride, padding, dilation, ceil_mode,
                             emulated_sm_count.load(), emulated_index32_limit.load());
  return backward_cpu(grad_out, x, out, lse, kernel_size, stride, padding, dilation, ceil_mode);
}

}  // namespace

TORCH_LIBRARY_IMPL(softpool, CPU, m) {
  m.impl("forward", &forward_cpu_selected);
  m.impl("backward", &backward_cpu_selected);
}

}  // namespace softpool

// _C._set_cpu_kernel(kernel: int, emulated_sm_count: int): 0 native, 1 cuda-emulated
// (on a device of that many multiprocessors, which sizes the emulated grid).
static PyObject* set_cpu_kernel(PyObject*, PyObject* args) {
  int kernel = 0;
  long long sms = 1;
  if (!PyArg_ParseTuple(args, "iL", &kernel, &sms)) return nullptr;
  if (kernel != softpool::kNative && kernel != softpool::kCudaEmulated) {
    PyErr_Format(PyExc_ValueError, "softpool: CPU kernel must be 0 (native) or 1 (cuda-emulated), got %d", kernel);
    return nullptr;
  }
  if (sms < 1) {
    PyErr_Format(PyExc_ValueError, "softpool: emulated_sm_count must be >= 1, got %lld", sms);
    return nullptr;
  }
  softpool::emulated_sm_count.store(static_cast<int64_t>(sms));
  softpool::cpu_kernel.store(kernel);
  Py_RETURN_NONE;
}

// _C._cpu_kernel() -> (kernel, emulated_sm_count)
static PyObject* get_cpu_kernel(PyObject*, PyObject*) {
  return Py_BuildValue("(iL)", softpool::cpu_kernel.load(), static_cast<long long>(softpool::emulated_sm_count.load()));
}

// _C._set_emulated_index32_limit(limit: int) -> previous limit: the emulated kernels index in
// 32 bits only when every index of the launch is below `limit` (0: always 64-bit).
static PyObject* set_emulated_index32_limit(PyObject*, PyObject* args) {
  long long limit = 0;
  if (!PyArg_ParseTuple(args, "L", &limit)) return nullptr;
  if (limit < 0 || limit > std::numeric_limits<int32_t>::max()) {
    PyErr_Format(PyExc_ValueError, "softpool: index32_limit must be in [0, 2**31 - 1], got %lld", limit);
    return nullptr;
  }
  return PyLong_FromLongLong(softpool::emulated_index32_limit.exchange(static_cast<int64_t>(limit)));
}

static PyMethodDef softpool_methods[] = {
    {"_set_cpu_kernel", set_cpu_kernel, METH_VARARGS, "Select the CPU kernels: 0 native, 1 cuda-emulated."},
    {"_cpu_kernel", get_cpu_kernel, METH_NOARGS, "(CPU kernel, emulated SM count)."},
    {"_set_emulated_index32_limit", set_emulated_index32_limit, METH_VARARGS,
     "Emulated kernels: 32-bit indices below this limit (0: always 64-bit); returns the previous one."},
    {nullptr, nullptr, 0, nullptr}};

// Importing softpool_video._C loads the library above, which registers the ops.
static PyModuleDef softpool_module = {PyModuleDef_HEAD_INIT, "_C", "SoftPool kernels (torch.ops.softpool)",
                                      -1, softpool_methods};

PyMODINIT_FUNC PyInit__C(void) { return PyModule_Create(&softpool_module); }
