"""README stays a five-minute read that links every page of docs/, and no link of README or
docs/ points at a file that is not there."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
PAGES = (README, *sorted((REPO / "docs").glob("*.md")))
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def relative_links(page: Path) -> list[str]:
    return [target for target in LINK.findall(page.read_text()) if "://" not in target]


def test_readme_is_short() -> None:
    lines = len(README.read_text().splitlines())
    assert lines <= 250, f"README.md has {lines} lines; move detail to a page of docs/ (at most 250)"


def test_readme_links_every_page_of_docs() -> None:
    linked = {(README.parent / target).resolve() for target in relative_links(README)}
    missing = [page.name for page in PAGES[1:] if page.resolve() not in linked]
    assert not missing, f"README links no page {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page: Path) -> None:
    broken = [target for target in relative_links(page) if not (page.parent / target).exists()]
    assert not broken, f"{page.name} links to missing files: {broken}"


def test_link_pattern_finds_relative_targets_only(tmp_path) -> None:
    page = tmp_path / "page.md"
    page.write_text("[a](docs/x.md) [b](https://example.org/y) [c](../README.md#results) [d](#anchor)")
    assert relative_links(page) == ["docs/x.md", "../README.md"]
