"""The results tables of README and docs/ are the files `make readme-tables` last wrote
(benchmarks/readme_tables.py), each with the command, commit, machine and date it ran on."""
from __future__ import annotations

import re

import pytest

from benchmarks.readme_tables import NAMES, TABLES_DIR, markdown_tables, page_of, readme_block, splice

PROVENANCE = re.compile(r"^`.+` at commit [0-9a-f]{7,}; .+, \d+ cores; \d{4}-\d\d-\d\d \d\d:\d\d UTC, [\d.]+ min\.$")


@pytest.mark.parametrize("name", NAMES)
def test_readme_table_is_the_file_its_command_wrote(name: str) -> None:
    path = TABLES_DIR / f"{name}.md"
    assert path.is_file(), f"{path} is missing: python -m benchmarks.readme_tables --only {name}"
    page = page_of(name)  # exactly one page publishes it
    block = readme_block(page.read_text(), name)
    assert block is not None, f"{page.name} has no single block for table {name!r}"
    assert block == path.read_text(), (f"{page.name}'s {name!r} table is not the file `make readme-tables` wrote; "
                                       "python -m benchmarks.readme_tables --splice copies it in")


@pytest.mark.parametrize("name", NAMES)
def test_each_table_says_how_it_was_measured(name: str) -> None:
    _, provenance, _, *body = (TABLES_DIR / f"{name}.md").read_text().splitlines()
    # From committed code: "with uncommitted changes" would name a commit that did not measure it.
    assert PROVENANCE.match(provenance), provenance
    assert markdown_tables("\n".join(body)), f"{name}: no markdown table"


def test_no_table_file_without_its_command() -> None:
    assert {p.stem for p in TABLES_DIR.glob("*.md")} == set(NAMES)


def test_splice_replaces_its_own_block_only() -> None:
    readme = ("intro\n<!-- readme-table: x -->\nold\n<!-- /readme-table -->\nmiddle\n"
              "<!-- readme-table: y -->\nkept\n<!-- /readme-table -->\nend\n")
    spliced = splice(readme, "x", "| a |\n|---|\n| 1 |\n")
    assert readme_block(spliced, "x") == "| a |\n|---|\n| 1 |\n"
    assert readme_block(spliced, "y") == "kept\n"
    assert spliced.startswith("intro\n") and "middle\n" in spliced and spliced.endswith("end\n")
    with pytest.raises(SystemExit, match="exactly one"):
        splice(readme, "z", "new\n")


def test_markdown_tables_are_runs_of_table_lines() -> None:
    text = "# title\n| a | b |\n|---|---|\n| 1 | 2 |\n\nnote\n| c |\n|---|\n"
    assert markdown_tables(text) == ["| a | b |\n|---|---|\n| 1 | 2 |", "| c |\n|---|"]
