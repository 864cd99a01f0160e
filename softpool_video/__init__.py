"""softpool-video: pooling in video networks, from raw clips to exported checkpoints."""
from ._extension import cpu_kernel, cuda_kernels_built, extension_loaded, extension_status, set_cpu_kernel
from .pooling import SoftPool1d, SoftPool2d, SoftPool3d, soft_pool1d, soft_pool2d, soft_pool3d
from .pooling import ops as _ops  # noqa: F401  (registers fake kernels and autograd)

__version__ = "0.1.0"

__all__ = [
    "SoftPool1d", "SoftPool2d", "SoftPool3d", "soft_pool1d", "soft_pool2d", "soft_pool3d",
    "extension_loaded", "extension_status", "cuda_kernels_built", "cpu_kernel", "set_cpu_kernel", "__version__",
]
