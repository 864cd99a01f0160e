"""Give up on a call that does not return in time (a decoder stuck on a hung file or mount).

A blocked C call cannot be interrupted from Python: signals only run between bytecodes, and
a thread cannot be killed. So the call runs in a daemon helper thread and the caller stops
waiting after `timeout` seconds. That works here because both decoders release the GIL
while they block (decord calls its library through ctypes, PyAV opens and decodes in
`nogil` sections), so the waiting thread keeps running. The abandoned thread stays blocked
until the call returns or its process exits (a DataLoader worker at the end of the run);
it holds one file handle and no Python state of ours. A worker wedged while *holding* the
GIL is beyond this: that is the worker-restart path of `ResilientDataLoader`.
"""
from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

_abandoned = 0  # per process: helper threads still blocked in a call we gave up on
_lock = threading.Lock()


def _reset_in_child() -> None:
    """A forked child has none of its parent's helper threads, and a lock one of them held
    at the fork would stay held in the child for good."""
    global _abandoned, _lock
    _abandoned, _lock = 0, threading.Lock()


os.register_at_fork(after_in_child=_reset_in_child)


def abandoned_calls() -> int:
    """How many timed-out calls of this process are still blocked (for reports and tests)."""
    return _abandoned


def call_with_timeout(fn: Callable[..., T], timeout: float | None, *args: Any, **kwargs: Any) -> T:
    """`fn(*args, **kwargs)`, or TimeoutError when it has not returned after `timeout` seconds.

    timeout None (or <= 0) calls `fn` directly. Exceptions raised by `fn` reach the caller.
    """
    global _abandoned
    if timeout is None or timeout <= 0:
        return fn(*args, **kwargs)
    outcome: dict[str, Any] = {}

    def target() -> None:
        global _abandoned
        try:
            outcome["value"] = fn(*args, **kwargs)
        except BaseException as err:  # handed to the caller, re-raised there
            outcome["error"] = err
        with _lock:
            outcome["done"] = True
            if outcome.get("abandoned"):
                _abandoned -= 1

    thread = threading.Thread(target=target, name="softpool-video-decode", daemon=True)
    thread.start()
    thread.join(timeout)
    with _lock:
        if not outcome.get("done"):
            outcome["abandoned"] = True
            _abandoned += 1
            raise TimeoutError(f"no result after {timeout:g}s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
