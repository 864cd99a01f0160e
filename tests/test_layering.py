"""Imports go downwards only (issue 14's layering), checked on the source with ast so a
violation fails here even when nothing imports the offending module."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"  # installed as softpool_video.models
POOLING = ROOT / "softpool_video" / "pooling"
# What the op layer and the pooling zoo must never import: the layers above them.
ABOVE_POOLING = ("softpool_video.datamodules", "softpool_video.models", "softpool_video.training")


def _imports(path: Path) -> list[ast.Import | ast.ImportFrom]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]


def _absolute_names(path: Path, package: str) -> list[tuple[int, str]]:
    """(line, module) for every import in `path`, relative ones resolved against `package`."""
    names = []
    for node in _imports(path):
        if isinstance(node, ast.Import):
            names += [(node.lineno, alias.name) for alias in node.names]
            continue
        base = package.split(".")
        if node.level:
            base = base[: len(base) - node.level + 1]
        module = ".".join(base + [node.module] if node.module else base) if node.level else node.module
        names.append((node.lineno, module))
        names += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]  # `from pkg import sub`
    return names


def test_the_checks_see_the_sources():
    assert len(list(MODELS.glob("*.py"))) > 5 and len(list(POOLING.glob("*.py"))) > 5


@pytest.mark.parametrize("path", sorted(MODELS.glob("*.py")), ids=lambda p: p.name)
def test_models_import_beyond_their_package_absolutely(path):
    """`from ..pooling import X` only works when models/ sits inside softpool_video; the
    folder is mapped there by packaging, so imports from outside it name softpool_video."""
    beyond = [f"line {n.lineno}: {'.' * n.level}{n.module or ''}"
              for n in _imports(path) if isinstance(n, ast.ImportFrom) and n.level >= 2]
    assert not beyond, f"{path.name} imports relatively beyond softpool_video.models: {beyond}"


@pytest.mark.parametrize("path", sorted(POOLING.glob("*.py")), ids=lambda p: p.name)
def test_pooling_imports_nothing_above_it(path):
    package = "softpool_video.pooling"
    upward = [f"line {line}: {module}" for line, module in _absolute_names(path, package)
              if module.startswith(ABOVE_POOLING)]
    assert not upward, f"{path.name} imports layers above the pooling zoo: {upward}"


def test_the_resolver_sees_relative_and_absolute_upward_imports(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("from ..datamodules import video_files\nfrom .. import models\n"
                      "import softpool_video.training.cli\nfrom . import ops\n")
    found = [module for _, module in _absolute_names(source, "softpool_video.pooling")]
    assert "softpool_video.datamodules" in found and "softpool_video.models" in found
    assert "softpool_video.training.cli" in found and "softpool_video.pooling.ops" in found
    assert [m for m in found if m.startswith(ABOVE_POOLING)] == [
        "softpool_video.datamodules", "softpool_video.datamodules.video_files", "softpool_video.models",
        "softpool_video.training.cli"]
