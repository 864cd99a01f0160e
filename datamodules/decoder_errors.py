"""The errors decord's FFmpeg reports while it decodes, counted.

decord conceals a damaged picture (FFmpeg fills the broken macroblocks in from
neighbouring ones) and returns it as a good frame; it exposes neither FFmpeg's
`decode_error_flags` nor the frame's corrupt flag, which is how PyAV's reader refuses such
frames. What FFmpeg does give every caller is its log: each concealed macroblock row comes
with an error-level message ("error while decoding MB 4 2"). decord2 ships its own copy of
FFmpeg, so a log callback installed in *that* libavutil sees decord's messages only (PyAV's
FFmpeg is another library with its own callback).

`count()` is the number of error-level messages decord's FFmpeg has sent in this process
so far; a reader compares it before and after a call. The count is per process, not per
reader: two decord reads at once in one process (threads) share it, so a damaged file can
make a clean one read at the same time look damaged. That errs towards refusing, and the
refused read falls back to PyAV, which reads the frames exactly or refuses them itself; a
DataLoader worker reads one video at a time. For the same reason, what decord's decoding
thread logs while it decodes ahead of a call that has returned counts towards the reader's
next call. A picture's errors are logged while it is decoded, before it can be returned, so
a read never returns a picture whose errors it has not counted.

The callback is Python (ctypes), so every message takes the GIL; decord calls FFmpeg with
the GIL released (ctypes), and damaged streams are rare, so clean decoding pays nothing.
"""
from __future__ import annotations

import atexit
import ctypes
import os
import threading
from pathlib import Path

AV_LOG_ERROR = 16  # libavutil/log.h: errors the decoder recovers from (and conceals) log here
_LOG_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)

_errors = 0
_last = ""  # the last message's format string, for a refusal's reason
_installed: object | None = None  # the ctypes thunk: kept alive while FFmpeg may call it
_lock = threading.Lock()  # decord's own decoding threads log too


def _new_lock() -> None:
    global _lock
    _lock = threading.Lock()  # a fork while another thread held it would leave it held


os.register_at_fork(after_in_child=_new_lock)


def _on_log(_avcl: int | None, level: int, fmt: bytes | None, _args: int | None) -> None:
    global _errors, _last
    if level > AV_LOG_ERROR:
        return
    with _lock:
        _errors += 1
        if fmt:
            _last = fmt.decode("utf-8", "replace").strip()


def _decord_libavutil() -> Path | None:
    """decord's own libavutil, as loaded in this process (after `import decord`)."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.rsplit(None, 1)[-1]
                if "decord" in path and "/libavutil" in path:
                    return Path(path)
    except OSError:  # not Linux: no /proc
        pass
    import decord

    libs = Path(decord.__file__).resolve().parents[1] / "decord2.libs"
    found = sorted(libs.glob("libavutil*.so*")) if libs.is_dir() else []
    return found[0] if found else None


def install() -> bool:
    """Route decord's FFmpeg log through the counter (once per process); False when decord's
    libavutil cannot be found, in which case `count()` stays 0 and concealment goes unseen."""
    global _installed
    with _lock:
        if _installed is not None:
            return True
        import decord  # noqa: F401 - loads decord's FFmpeg, so that it shows in /proc/self/maps

        path = _decord_libavutil()
        if path is None:
            return False
        lib = ctypes.CDLL(str(path))  # the loaded library (same path): no second copy
        callback = _LOG_CALLBACK(_on_log)
        lib.av_log_set_callback(callback)
        default = ctypes.cast(lib.av_log_default_callback, ctypes.c_void_p)
        # After interpreter shutdown a Python callback must not be called: a reader freed
        # at exit may still log. FFmpeg's own callback prints (at decord's level) as before.
        atexit.register(lib.av_log_set_callback, default)
        _installed = callback
        return True


def count() -> int:
    """Error-level messages decord's FFmpeg has sent in this process so far."""
    return _errors


def last_message() -> str:
    """The last one (FFmpeg's format string, e.g. 'error while decoding MB %d %d')."""
    return _last
