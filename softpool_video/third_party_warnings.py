"""Third-party deprecation notices a user cannot act on, silenced in one place.

Each entry is a library's own call of an API that a newer dependency deprecated, fixed only
upstream; the filter matches that library's module only, so the same deprecation raised from
anyone else's code (ours included) still shows. The command line installs the filters
(`silence_third_party_deprecations`, softpool_video/cli.py); the tests read the same list
(tests/conftest.py), so tests and runs agree on what is quiet.
"""
from __future__ import annotations

import warnings
from typing import NamedTuple


class KnownDeprecation(NamedTuple):
    message: str  # regular expression, matched at the start of the warning's text
    category: type[Warning]
    module: str  # the library whose own code raises it
    reason: str


KNOWN_DEPRECATIONS: tuple[KnownDeprecation, ...] = (
    KnownDeprecation(r".*isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning, "pytorch_lightning",
                     "pytorch_lightning 2.6.6 builds torch pytree leaves with LeafSpec(), deprecated in torch 2.14"),
    KnownDeprecation(r"'saved_variables' is deprecated", DeprecationWarning, "pytorchvideo",
                     "pytorchvideo 0.1.5's Swish autograd function reads ctx.saved_variables"),
    KnownDeprecation(r"\s*(skip_none parameter|``ArgumentParser.add_instantiator``|``instantiate_classes``) "
                     r"was deprecated", DeprecationWarning, "pytorch_lightning",
                     "pytorch_lightning 2.6.6's LightningCLI calls jsonargparse APIs deprecated in 4.49"),
)


def silence_third_party_deprecations() -> None:
    """Ignore the KNOWN_DEPRECATIONS (process-wide: for entry points, not for library imports)."""
    for known in KNOWN_DEPRECATIONS:
        warnings.filterwarnings("ignore", message=known.message, category=known.category, module=known.module)


def as_pytest_filterwarnings() -> list[str]:
    """The same filters as pytest `filterwarnings` lines."""
    return [f"ignore:{k.message}:{k.category.__name__}:{k.module}" for k in KNOWN_DEPRECATIONS]
