"""What a measurement ran on, and the process peak resident set."""
from __future__ import annotations

import platform
import resource
import sys
from typing import Any

import torch


def peak_rss_bytes() -> int:
    """The process's peak resident set: Linux's VmHWM (which `reset_peak_rss` can reset),
    else getrusage's ru_maxrss (which never goes down, and on Linux even carries over
    from the parent across exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss if sys.platform == "darwin" else rss * 1024


def rss_bytes() -> int | None:
    """The current resident set (Linux), None elsewhere."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize()
    except OSError:
        return None


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return device.type


def environment(device: torch.device, dtype: torch.dtype | None = None, amp: bool | None = None) -> dict[str, Any]:
    """Device, versions and threads, recorded with every result."""
    import pytorch_lightning
    import torchvision

    import softpool_video

    info: dict[str, Any] = {
        "device": device_name(device), "torch": torch.__version__, "torchvision": torchvision.__version__,
        "pytorch_lightning": pytorch_lightning.__version__,
        "softpool_video": getattr(softpool_video, "__version__", "unknown"),
        "python": platform.python_version(), "threads": torch.get_num_threads(), "machine": platform.machine(),
    }
    if device.type == "cuda":
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
    if dtype is not None:
        info["dtype"] = str(dtype).replace("torch.", "")
    if amp is not None:
        info["amp"] = amp
    return info


def reset_peak_rss() -> bool:
    """Resets the process peak RSS to the current RSS (Linux /proc/self/clear_refs), so the
    next `peak_rss_bytes()` is the peak since now. False where the OS does not allow it;
    the peak is then the lifetime peak."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
