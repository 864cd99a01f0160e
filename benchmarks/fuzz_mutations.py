"""Seeded byte-level mutations of a video file, for the fuzz campaign (benchmarks/fuzz.py).

Five kinds: bit flips in the container header and in the payload, truncation at a random
offset, a zeroed range and a duplicated range. The header is where the container keeps its
index and stream descriptions (AVI: everything before the `movi` list; Matroska: before the
first Cluster; MP4: the `moov` box, wherever it lies), the payload the rest. Each mutation
is a pure function of (bytes, rng), so a seed reproduces a file exactly.
"""
from __future__ import annotations

import struct
from collections.abc import Callable

import numpy as np

KINDS: tuple[str, ...] = ("header-bitflip", "payload-bitflip", "truncate", "zero-range", "duplicate-range")
_MKV_CLUSTER = b"\x1f\x43\xb6\x75"


def _mp4_moov(data: bytes) -> tuple[int, int] | None:
    """(start, end) of the top-level `moov` box, walking the box sizes."""
    at = 0
    while at + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[at:at + 8])
        if size == 1 and at + 16 <= len(data):  # 64-bit size follows the type
            size = struct.unpack(">Q", data[at + 8:at + 16])[0]
        if kind == b"moov":
            return at, min(len(data), at + max(size, 8))
        if size < 8:
            return None
        at += size
    return None


def header_span(data: bytes) -> tuple[int, int]:
    """(start, end) of the container header of `data` (see the module docstring); the first
    4 KiB when the container is not recognised."""
    if data[:4] == b"RIFF" and (movi := data.find(b"movi")) > 0:
        return 0, movi
    if data[:4] == b"\x1a\x45\xdf\xa3" and (cluster := data.find(_MKV_CLUSTER)) > 0:
        return 0, cluster
    if data[4:8] == b"ftyp" and (moov := _mp4_moov(data)) is not None:
        return moov
    return 0, min(len(data), 4096)


def _flip_bits(data: bytes, lo: int, hi: int, rng: np.random.Generator, most: int) -> bytes:
    out = bytearray(data)
    for at in rng.integers(lo, max(hi, lo + 1), int(rng.integers(1, most + 1))):
        out[int(at)] ^= 1 << int(rng.integers(0, 8))
    return bytes(out)


def header_bitflip(data: bytes, rng: np.random.Generator) -> bytes:
    lo, hi = header_span(data)
    return _flip_bits(data, lo, hi, rng, most=8)


def payload_bitflip(data: bytes, rng: np.random.Generator) -> bytes:
    lo, hi = header_span(data)
    # The payload is what lies outside the header: before it (MP4 with moov at the end) or after.
    spans = [(a, b) for a, b in ((0, lo), (hi, len(data))) if b - a > 64]
    a, b = spans[int(rng.integers(0, len(spans)))] if spans else (0, len(data))
    return _flip_bits(data, a, b, rng, most=32)


def truncate(data: bytes, rng: np.random.Generator) -> bytes:
    return data[:int(rng.integers(1, len(data)))]


def _range(data: bytes, rng: np.random.Generator) -> tuple[int, int]:
    length = int(rng.integers(16, min(4096, max(17, len(data) // 4))))
    start = int(rng.integers(0, max(1, len(data) - length)))
    return start, start + length


def zero_range(data: bytes, rng: np.random.Generator) -> bytes:
    a, b = _range(data, rng)
    return data[:a] + bytes(b - a) + data[b:]


def duplicate_range(data: bytes, rng: np.random.Generator) -> bytes:
    """A range repeated: inserted again right after itself (the file grows), or copied over
    the bytes at another offset (same size), as a bad copy or a stuck write would."""
    a, b = _range(data, rng)
    if rng.integers(0, 2):
        return data[:b] + data[a:b] + data[b:]
    to = int(rng.integers(0, max(1, len(data) - (b - a))))
    return data[:to] + data[a:b] + data[to + b - a:]


MUTATIONS: dict[str, Callable[[bytes, np.random.Generator], bytes]] = {
    "header-bitflip": header_bitflip, "payload-bitflip": payload_bitflip, "truncate": truncate,
    "zero-range": zero_range, "duplicate-range": duplicate_range}


def mutate(data: bytes, kind: str, seed: int) -> bytes:
    """`data` mutated by `kind` (KINDS) with a generator seeded by `seed`."""
    if kind not in MUTATIONS:
        raise ValueError(f"mutation kind={kind!r} is not known; choose one of {KINDS}")
    return MUTATIONS[kind](data, np.random.default_rng(seed))
