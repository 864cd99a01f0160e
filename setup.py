"""Builds softpool_video._C; the package's metadata and options live in setup.cfg, the build system in pyproject.toml.

The extension is a CUDAExtension when this torch is a CUDA build and a CUDA
toolkit can be found, otherwise a CppExtension (CPU kernels only).
SOFTPOOL_SKIP_EXTENSION=1 installs the package without it (pure Python).
"""
import glob
import importlib.util
import os
import re
import shutil
import subprocess
import sys

from setuptools import setup


def find_cuda_home() -> str | None:
    """CUDA_HOME when set, else the toolkit root that nvcc itself reports.

    torch guesses two folders above `which nvcc`, which is wrong when nvcc on
    PATH is a wrapper script; `nvcc --dryrun` prints the real root as TOP=.
    """
    if os.environ.get("CUDA_HOME"):
        return os.environ["CUDA_HOME"]
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return None
    try:
        dry = subprocess.run([nvcc, "--dryrun", "-x", "cu", "/dev/null"],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"TOP=(\S+)", dry.stdout + dry.stderr)
    return os.path.realpath(match.group(1)) if match else None


def wheel_cuda_includes() -> list[str]:
    """Headers of the CUDA libraries that ship inside torch's wheel (nvidia/*/include).

    ATen's CUDA headers include cuSPARSE, cuBLAS and cuSOLVER headers that a bare
    toolkit may lack; the pip-installed libraries carry them.
    """
    spec = importlib.util.find_spec("nvidia")
    if spec is None or not spec.submodule_search_locations:
        return []
    dirs = []
    for root in spec.submodule_search_locations:
        dirs += sorted(glob.glob(os.path.join(root, "*", "include")))
    return dirs


def native_simd_flags() -> list[str]:
    """AVX2/FMA when the building CPU has them, so the CPU kernels' lane loops vectorise.

    The extension is built on the machine that runs it (make setup); set
    SOFTPOOL_PORTABLE=1 for a build that runs on any x86-64.
    """
    if os.environ.get("SOFTPOOL_PORTABLE") == "1":
        return []
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return []
    return ["-mavx2", "-mfma"] if (" avx2" in flags and " fma" in flags) else []


def build_extension():
    # torch.utils.cpp_extension reads CUDA_HOME when it is imported.
    cuda_home = find_cuda_home()
    if cuda_home and os.environ.get("SOFTPOOL_FORCE_CPU") != "1":
        os.environ["CUDA_HOME"] = cuda_home
    import torch
    from torch.utils import cpp_extension

    here = os.path.dirname(os.path.abspath(__file__))
    src = os.path.join("cuda_ext")
    sources = sorted(glob.glob(os.path.join(src, "*.cpp")))
    cuda_sources = sorted(glob.glob(os.path.join(src, "*.cu")))
    use_cuda = (
        os.environ.get("SOFTPOOL_FORCE_CPU") != "1"
        and torch.version.cuda is not None
        and cuda_home is not None
        and cpp_extension.CUDA_HOME is not None
    )
    # torch sets the C++ standard it needs. OpenMP makes at::parallel_for
    # parallel (torch's own libgomp is the one loaded at run time).
    cxx_flags = ["-O3", "-fopenmp", "-fno-trapping-math"] + native_simd_flags()
    if use_cuda:
        if not os.environ.get("TORCH_CUDA_ARCH_LIST") and not torch.cuda.is_available():
            # No GPU to ask: compile one arch so the CUDA code is still built and checked.
            os.environ["TORCH_CUDA_ARCH_LIST"] = "9.0"
        print(f"softpool-video: building CUDA extension (CUDA_HOME={cuda_home}, "
              f"arch={os.environ.get('TORCH_CUDA_ARCH_LIST', 'auto')})", file=sys.stderr)
        ext = cpp_extension.CUDAExtension(
            "softpool_video._C",
            sources + cuda_sources,
            include_dirs=[os.path.join(here, src)] + wheel_cuda_includes(),
            define_macros=[("SOFTPOOL_WITH_CUDA", None)],
            extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3"]},
            extra_link_args=["-fopenmp"],
        )
    else:
        print("softpool-video: building CPU-only extension (no CUDA toolkit or CPU torch)",
              file=sys.stderr)
        ext = cpp_extension.CppExtension(
            "softpool_video._C",
            sources,
            include_dirs=[os.path.join(here, src)],
            extra_compile_args={"cxx": cxx_flags},
            extra_link_args=["-fopenmp"],
        )
    return [ext], {"build_ext": cpp_extension.BuildExtension.with_options(use_ninja=True)}


if os.environ.get("SOFTPOOL_SKIP_EXTENSION") == "1":
    # A pure-Python install (SoftPool runs on the reference); the Makefile installs the
    # dependencies this way so that a kernel edit rebuilds only the extension.
    setup()
else:
    ext_modules, cmdclass = build_extension()
    setup(ext_modules=ext_modules, cmdclass=cmdclass)
