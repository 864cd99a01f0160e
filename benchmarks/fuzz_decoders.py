"""Both readers against the full decode, one fuzzed file at a time, each in a forked child.

For one file (`check_file`): the ground truth is the full sequential decode (the project's
`prepare.full_decode` on one thread, as the readers decode: the pictures the decoder puts
out, in order, up to the first error).
Each decoder then opens the file alone (no fallback), reads every frame in one call and a
few frames one at a time in a seeded random order (seeks); each call runs under
`call_with_timeout(decode_timeout)`, as the dataset's reads do. A decoder *accepts* the
file when every call returns; then every frame it returned must be the full decode's frame
of that number, and it must count as many frames as the full decode gives. A *rejection*
is a DecodeError (or IndexError) with its reason, or a timeout.

`check_files` runs `check_file` in forked children, `jobs` at a time: a decoder that crashes
(a signal) or hangs past every timeout takes only its child with it, and the file is
counted as a crash or a hang.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

SEEK_READS = 4  # single-frame reads in random order, after the full read
HANG_GRACE_S = 2.0  # a call is "past the timeout" when it returns this much later than asked


def ground_truth(path: Path, timeout: float) -> tuple[list[np.ndarray], str]:
    """The full decode's frames, and why it stopped early ('' when it reached the end)."""
    from softpool_video.datamodules.prepare import full_decode
    from softpool_video.datamodules.timeouts import call_with_timeout

    frames: list[np.ndarray] = []

    def decode() -> None:
        for frame in full_decode(path, threads=1):  # as the readers decode: see full_decode
            frames.append(frame)

    try:
        call_with_timeout(decode, timeout)
    except TimeoutError as err:
        return frames, f"timed out: {err}"
    except Exception as err:  # a corrupt stream ends the decode with one of many error types
        return frames, f"{type(err).__name__}: {err}"
    return frames, ""


def check_decoder(path: Path, decoder: str, timeout: float, truth: list[np.ndarray],
                  truth_error: str, seed: int) -> dict[str, Any]:
    """One decoder on one file: accepted or rejected (with the reason), mismatched frames."""
    from softpool_video.datamodules.decoders import DecodeError, open_video
    from softpool_video.datamodules.timeouts import call_with_timeout

    out: dict[str, Any] = {"accepted": False, "reason": "", "timed_out": False, "longest_s": 0.0,
                           "mismatch": ""}

    def timed(fn: Callable[..., Any], *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return call_with_timeout(fn, timeout, *args)
        finally:  # how long the caller waited: more than the timeout means it failed to stop it
            out["longest_s"] = round(max(out["longest_s"], time.perf_counter() - start), 3)

    reader = None
    try:
        reader = timed(lambda: open_video(path, decoder, fallback=False))
        n = reader.num_frames
        everything = timed(reader.get, np.arange(n)).numpy()
        picks = np.random.default_rng(seed).integers(0, n, SEEK_READS)
        singles = [(int(i), timed(reader.get, [int(i)])[0].numpy()) for i in picks]
        out["accepted"], out["frames"] = True, n
    except TimeoutError as err:
        out["reason"], out["timed_out"] = f"timed out: {err}", True
    except (DecodeError, IndexError) as err:
        out["reason"] = getattr(err, "reason", str(err))
    finally:
        if reader is not None and not out["timed_out"]:
            reader.close()  # a timed-out call may still be using it
    if out["accepted"]:
        out["mismatch"] = _compare(everything, singles, truth, truth_error)
    return out


def _compare(everything: np.ndarray, singles: list[tuple[int, np.ndarray]],
             truth: list[np.ndarray], truth_error: str) -> str:
    """'' when the reader's frames are the full decode's; else what differs."""
    if len(everything) != len(truth):
        return (f"{len(everything)} frames read, the full decode gives {len(truth)}"
                + (f" (it stops: {truth_error})" if truth_error else ""))
    for i, frame in enumerate(everything):
        if frame.shape != truth[i].shape or not np.array_equal(frame, truth[i]):
            return f"frame {i} of a read of every frame differs from the full decode"
    for i, frame in singles:
        if not np.array_equal(frame, truth[i]):
            return f"frame {i} read alone differs from the full decode"
    return ""


def check_file(path: Path, timeout: float, seed: int, decoders: tuple[str, ...]) -> dict[str, Any]:
    """Ground truth and every decoder on one file (runs in a child process)."""
    truth, truth_error = ground_truth(path, timeout)
    return {"truth_frames": len(truth), "truth_error": truth_error,
            **{b: check_decoder(path, b, timeout, truth, truth_error, seed) for b in decoders}}


def _child(conn: Any, path: Path, timeout: float, seed: int, decoders: tuple[str, ...]) -> None:
    try:
        conn.send(check_file(path, timeout, seed, decoders))
    except BaseException as err:  # anything else is a bug of ours: report it, do not hide it
        conn.send({"error": f"{type(err).__name__}: {err}"})
    finally:
        conn.close()


def _watchdog_s(timeout: float, decoders: tuple[str, ...]) -> float:
    # Every call bounded by the timeout: the truth, then per decoder open, read all, the seeks.
    return timeout * (1 + len(decoders) * (2 + SEEK_READS)) + 30.0


def check_files(paths: list[Path], timeout: float, *, jobs: int = 2, seed: int = 0,
                decoders: tuple[str, ...] = ("decord", "pyav")) -> dict[str, dict[str, Any]]:
    """`check_file` for every path, each in a forked child; a child that dies by a signal or
    outlives every timeout is recorded as {'crash': ...} or {'hang': ...}."""
    ctx = multiprocessing.get_context("fork")  # the parent has imported av, decord, torch once
    todo = list(enumerate(paths))
    running: dict[int, tuple[Any, Any, float, Path]] = {}
    results: dict[str, dict[str, Any]] = {}
    limit = _watchdog_s(timeout, decoders)
    while todo or running:
        while todo and len(running) < jobs:
            k, path = todo.pop(0)
            parent, child = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_child, args=(child, path, timeout, seed + k, decoders), daemon=True)
            proc.start()
            child.close()
            running[proc.pid] = (proc, parent, time.monotonic(), path)
        for pid, (proc, conn, started, path) in list(running.items()):
            if conn.poll():
                with contextlib.suppress(EOFError):  # a child that died while sending
                    results[str(path)] = conn.recv()
            proc.join(0)
            if proc.exitcode is None and time.monotonic() - started > limit:
                proc.kill()
                proc.join()
                results[str(path)] = {"hang": f"no result after {limit:.0f}s (killed)"}
            if proc.exitcode is not None:
                if str(path) not in results and conn.poll():
                    with contextlib.suppress(EOFError):  # a dead child's pipe polls as readable
                        results[str(path)] = conn.recv()
                if str(path) not in results:
                    results[str(path)] = {"crash": f"checker died with exit code {proc.exitcode}"}
                conn.close()
                del running[pid]
        time.sleep(0.01)
    return results


def hung_past_timeout(result: dict[str, Any], timeout: float) -> bool:
    """Whether a call of this file's check outlived its timeout (the timeout failed to stop it)."""
    if "hang" in result:
        return True
    return any(isinstance(r, dict) and r.get("longest_s", 0.0) > timeout + HANG_GRACE_S
               for r in result.values())
