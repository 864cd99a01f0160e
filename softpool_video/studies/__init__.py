"""Studies: experiments built on models, data and training, which write reports and figures.

- The study grid (`softpool-video study`): pooling x split x seed cells (`grid.py`),
  their paired statistics (`statistics.py`), where the cells run (`launch.py`,
  `local_launcher.py` with `cell_process.py`, `slurm_launcher.py`), and their state
  (`grid_status.py`, `cell_progress.py`).
- The pooling profile (`profile-pooling`, `pooling_profile.py`), the information retention
  study (`retention`, `retention.py`) and the model profile (`profile`, `model_profile.py`).

The speed benchmarks of `make bench` are not studies: they live in `benchmarks/`.
"""
