"""benchmarks/srtg_gate_gradient.py: its table pairs the two settings' runs seed by seed."""
from __future__ import annotations

from benchmarks.srtg_gate_gradient import markdown


def test_table_pairs_the_settings_seed_by_seed():
    backbone = {(None, 0): 0.90, (None, 1): 0.80, (None, 2): 0.85}
    recurrent = {(None, 0): 0.92, (None, 1): 0.83, (None, 2): 0.86, (None, 3): 0.99}  # seed 3 has no pair
    table = markdown({"backbone": backbone, "recurrent": recurrent})
    assert "| backbone | 3 | 85.0 ± 5.0 |" in table
    assert "| recurrent | 4 |" in table
    # differences +2, +3, +1 points over the 3 common seeds: mean +2.0, std 1.0, t_{0.975,2} = 4.303
    row = next(line for line in table.splitlines() if line.startswith("| recurrent - backbone"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "+2.0" and cells[2] == "-0.5 to +4.5" and cells[4] == "3"
