"""Loads the compiled kernels (softpool_video._C) once, or explains why not, and
selects which implementation SoftPool runs on CPU tensors.

SOFTPOOL_VIDEO_CPU_KERNEL (read once, when softpool_video is imported):

- ``native`` (default): the CPU kernels of cuda_ext/softpool_cpu.cpp (fast).
- ``cuda-emulated``: the CUDA kernels' own per-thread functions
  (cuda_ext/softpool_kernels.h) run on the CPU over the launch grid the CUDA
  launcher computes; slow, for tests of the CUDA index arithmetic without a GPU.
- ``reference``: the pure-PyTorch path (softpool_video.pooling.reference), as
  without the extension.

CUDA tensors always run the CUDA kernels. `set_cpu_kernel` switches in-process
(tests). SOFTPOOL_VIDEO_NO_EXTENSION=1 skips loading the extension altogether.
"""
from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import torch

log = logging.getLogger(__name__)

CPU_KERNEL_ENV = "SOFTPOOL_VIDEO_CPU_KERNEL"
NO_EXTENSION_ENV = "SOFTPOOL_VIDEO_NO_EXTENSION"
CPU_KERNELS = ("native", "cuda-emulated", "reference")
_C_CODES = {"native": 0, "cuda-emulated": 1}  # the C++ switch (cuda_ext/softpool.cpp)

_LOAD_ERROR: str | None = None
_C = None

try:
    if os.environ.get(NO_EXTENSION_ENV) == "1":  # compare against the fallback
        raise ImportError(f"disabled by {NO_EXTENSION_ENV}=1")
    from . import _C  # importing registers torch.ops.softpool.*
except ImportError as err:  # not built, or built against another torch
    _LOAD_ERROR = str(err)
    warnings.warn(
        "softpool_video._C could not be loaded "
        f"({err}); SoftPool runs on the pure-PyTorch reference, which is correct but "
        "slower and uses more memory. Run `make build` to compile the extension.",
        RuntimeWarning,
        stacklevel=2,
    )


def parse_cpu_kernel(value: str | None) -> str:
    """The CPU implementation named by a SOFTPOOL_VIDEO_CPU_KERNEL value (unset or empty: native)."""
    name = (value or "native").strip().lower()
    if name not in CPU_KERNELS:
        raise ValueError(f"{CPU_KERNEL_ENV}={value!r} is not a SoftPool CPU implementation; "
                         f"allowed values: {', '.join(CPU_KERNELS)} (default: native)")
    return name


_cpu_kernel = "native"


def extension_loaded() -> bool:
    return _LOAD_ERROR is None


def extension_error() -> str | None:
    """Why softpool_video._C did not load (None when it did)."""
    return _LOAD_ERROR


def built_extension_files() -> list[str]:
    """The compiled extension files a build left beside this module (`_C.<abi tag>.so`),
    whether or not this interpreter can load them."""
    return sorted(p.name for p in Path(__file__).parent.glob("_C.*") if p.suffix in (".so", ".pyd"))


def extension_expected() -> bool:
    """True when the build produced softpool_video._C and nothing disabled it on purpose:
    then an extension that does not load is a broken build, not a pure-Python install."""
    return os.environ.get(NO_EXTENSION_ENV) != "1" and bool(built_extension_files())


def set_cpu_kernel(name: str, emulated_sm_count: int = 1) -> None:
    """Selects what SoftPool runs on CPU tensors: "native", "cuda-emulated" or "reference"
    (see the module docstring). `emulated_sm_count` sizes the emulated launch grid
    (min(ceil(total / 256), 32 x SMs) blocks of 256 threads, as the CUDA launcher does on a
    device with that many SMs); the default, one SM, makes every tensor above 8192
    elements take several turns of the grid-stride loop."""
    global _cpu_kernel
    name = parse_cpu_kernel(name)
    if name != "reference" and not extension_loaded():
        raise RuntimeError(f"SoftPool CPU kernel {name!r} needs the compiled extension, which is not "
                           f"loaded ({_LOAD_ERROR}); only 'reference' is available")
    if extension_loaded():
        if hasattr(_C, "_set_cpu_kernel"):
            _C._set_cpu_kernel(_C_CODES.get(name, 0), int(emulated_sm_count))
        elif name == "cuda-emulated":
            raise RuntimeError("this build of softpool_video._C has no emulated CUDA kernels: run `make build`")
    _cpu_kernel = name


def cpu_kernel() -> str:
    """The implementation SoftPool runs on CPU tensors ("reference" without the extension)."""
    return _cpu_kernel if extension_loaded() else "reference"


def use_reference_on_cpu() -> bool:
    return cpu_kernel() == "reference"


def cuda_kernels_built() -> bool:
    """True when the extension was compiled with its CUDA kernels."""
    return extension_loaded() and torch._C._dispatch_has_kernel_for_dispatch_key("softpool::forward", "CUDA")


def extension_status() -> str:
    """E.g. "CPU+CUDA kernels; CPU kernel: native"."""
    if not extension_loaded():
        return f"not loaded ({_LOAD_ERROR}); CPU kernel: reference"
    kernels = "CPU+CUDA kernels" if cuda_kernels_built() else "CPU kernels"
    return f"{kernels}; CPU kernel: {cpu_kernel()}"


def _select_from_environment() -> None:
    name = parse_cpu_kernel(os.environ.get(CPU_KERNEL_ENV))  # a bad value fails the import, naming it
    if not extension_loaded():
        if name != "native":
            log.warning("%s=%s: the extension is not loaded, SoftPool runs on the reference", CPU_KERNEL_ENV, name)
        return
    if name != "native":  # native is the C++ default
        set_cpu_kernel(name)


_select_from_environment()
