"""Config files by name: `--config ucf101/r2plus1d_50` finds the YAML shipped with the package.

Names are looked up in the installed package (`softpool_video.configs`) first and then
in the `configs/` folder of a source checkout. An existing file path is used as is.
"""
from __future__ import annotations

import importlib.resources
import importlib.util
import os
from pathlib import Path

_SUFFIXES = (".yaml", ".yml")
# Folders of fragments, not experiments: data/ and trainer/ are included by the experiment
# configs, strategy/ is stacked on one by the user (`--config strategy/ddp`). They resolve by
# name like any config but are listed apart and never name a run.
FRAGMENT_FOLDERS = ("data", "trainer", "strategy")
_CONFIG_FLAGS = ("--config", "-c")


def config_roots() -> list[Path]:
    """Folders searched for named configs, in order."""
    roots: list[Path] = []
    try:
        if importlib.util.find_spec("softpool_video.configs") is not None:
            roots.append(Path(str(importlib.resources.files("softpool_video.configs"))))
    except ModuleNotFoundError:
        pass
    checkout = Path(__file__).resolve().parents[2] / "configs"
    if checkout.is_dir() and all(checkout != r.resolve() for r in roots):
        roots.append(checkout)
    return roots


def _is_fragment_name(rel: Path) -> bool:
    return len(rel.parts) > 1 and rel.parts[0] in FRAGMENT_FOLDERS


def available_configs() -> list[str]:
    """Every experiment config name (relative path without suffix), e.g. 'ucf101/r2plus1d_50'."""
    names: set[str] = set()
    for root in config_roots():
        for path in root.rglob("*"):
            rel = path.relative_to(root)
            if path.suffix in _SUFFIXES and not _is_fragment_name(rel):
                names.add(rel.with_suffix("").as_posix())
    return sorted(names)


def available_strategies() -> list[str]:
    """Strategy fragments to stack after an experiment, e.g. 'strategy/ddp'."""
    names: set[str] = set()
    for root in config_roots():
        for path in (root / "strategy").glob("*"):
            if path.suffix in _SUFFIXES:
                names.add(f"strategy/{path.stem}")
    return sorted(names)


def is_fragment(path: str | os.PathLike) -> bool:
    """Whether a config file is a shipped fragment (strategy/..., trainer/..., data/...), not an experiment."""
    path = Path(path).resolve()
    for root in config_roots():
        try:
            return _is_fragment_name(path.relative_to(root.resolve()))
        except ValueError:
            continue
    return False


def resolve_config(name: str | os.PathLike) -> Path:
    """The YAML file for a config name or path; a clear error listing the names if there is none."""
    path = Path(name)
    if path.is_file():
        return path
    stem = Path(str(name).removesuffix(".yaml").removesuffix(".yml"))
    for root in config_roots():
        for suffix in _SUFFIXES:
            candidate = root / stem.with_suffix(suffix)
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(f"--config: no file or config named {str(name)!r}; available names: "
                            f"{', '.join(available_configs() + available_strategies()) or '(none found)'}")


def config_name(path: str | os.PathLike) -> str:
    """The name of a config file: its path under a config root without suffix, else its stem."""
    path = Path(path).resolve()
    for root in config_roots():
        try:
            return path.relative_to(root.resolve()).with_suffix("").as_posix()
        except ValueError:
            continue
    return path.stem


def expand_config_args(argv: list[str]) -> list[str]:
    """Replace config names after --config / -c / --config=NAME with their file paths."""
    out: list[str] = []
    expect_value = False
    for arg in argv:
        if expect_value:
            out.append(str(resolve_config(arg)))
            expect_value = False
        elif arg in _CONFIG_FLAGS:
            out.append(arg)
            expect_value = True
        elif arg.startswith("--config="):
            out.append("--config=" + str(resolve_config(arg.split("=", 1)[1])))
        else:
            out.append(arg)
    return out
