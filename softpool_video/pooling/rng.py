"""Random draws for the stochastic pools, reproducible from a seed or a generator.

A pool built with `seed=` owns a torch.Generator per device, created on first
use and seeded once, so a sequence of forward calls is the same run after run.
A pool built with `generator=` draws from that generator (on its device) and
moves the numbers to the input's device. With neither, torch's default
generator is used, as nn.Dropout does.
"""
from __future__ import annotations

import torch


class RandomSource:
    def __init__(self, seed: int | None = None, generator: torch.Generator | None = None) -> None:
        if seed is not None and generator is not None:
            raise ValueError("pass either seed or generator, not both")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise ValueError(f"seed must be an int, got {seed!r}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ValueError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        self.seed = seed
        self.generator = generator
        self._seeded: dict[str, torch.Generator] = {}

    def _generator_for(self, device: torch.device) -> torch.Generator | None:
        if self.generator is not None:
            return self.generator
        if self.seed is None:
            return None
        key = str(device)
        if key not in self._seeded:
            self._seeded[key] = torch.Generator(device=device).manual_seed(self.seed)
        return self._seeded[key]

    def rand(self, shape: tuple[int, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """Uniform [0, 1) numbers of `shape` on `device`."""
        gen = self._generator_for(torch.device(device))
        draw_on = gen.device if gen is not None else device
        u = torch.rand(shape, generator=gen, device=draw_on, dtype=dtype)
        return u.to(device)

    def reset(self) -> None:
        """Start the seeded sequence again (no effect with a user generator)."""
        self._seeded.clear()

    def __getstate__(self) -> dict:
        # Generators do not pickle; a copy restarts the seeded sequence.
        state = dict(self.__dict__)
        state["_seeded"] = {}
        if self.generator is not None:
            state["generator"] = None
            state["_generator_state"] = (str(self.generator.device), self.generator.get_state())
        return state

    def __setstate__(self, state: dict) -> None:
        saved = state.pop("_generator_state", None)
        self.__dict__.update(state)
        if saved is not None:
            device, gen_state = saved
            self.generator = torch.Generator(device=device)
            self.generator.set_state(gen_state)

    def __repr__(self) -> str:
        if self.generator is not None:
            return f"generator({self.generator.device})"
        return f"seed={self.seed}" if self.seed is not None else "global RNG"
