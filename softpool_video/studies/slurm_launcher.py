"""`study --launcher slurm`: every cell a SLURM job, one job array per submission, through
submitit.

The command submits and returns (`--wait` blocks until the jobs have left the queue); each
submission is recorded in `<out>/slurm/submissions.json` (cell -> job id and log paths), which
`study --status` and the next submission read. Inside the job, `run_cell_job` catches
SLURM's warning signal from the start, runs the cell with `requeue_on_signal` (requeue.py) and
pins torch's threads to the job's CPUs. A requeued job runs the same cell again, which resumes
from its `last.ckpt`.

A cell's resources are `SlurmOptions` (`--slurm.*`); with GPUs, one task per GPU, started by
`srun`, so Lightning's SLURMEnvironment sets the ranks, and the cell trains with
`strategy/ddp` when it spans more than one device.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import io
import json
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from softpool_video.reporting import write_json_atomic
from softpool_video.training.requeue import Requeued, install_signal_handlers

from .grid import Cell, cell_folder

SUBMISSIONS_FILE = "submissions.json"
# squeue states of a job that still holds its cell
QUEUED_STATES = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD",
                 "RESIZING", "SIGNALING", "STAGE_OUT", "SUSPENDED", "STOPPED"}
_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


@dataclass
class SlurmOptions:
    """A cell's resources (the `--slurm.*` options)."""
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time: str = "24:00:00"  # sbatch's formats: MM, HH:MM:SS, D-HH[:MM[:SS]]
    nodes: int = 1
    gpus_per_node: int = 0  # = tasks per node: one task per device
    cpus_per_task: int | None = None
    mem: str | None = None  # per node, as sbatch --mem takes it (e.g. 64G)
    constraint: str | None = None
    signal_delay_s: int = 90  # the warning signal comes this long before the time limit
    sbatch: list[str] = field(default_factory=list)  # extra sbatch options, KEY=VALUE or KEY

    @property
    def tasks_per_node(self) -> int:
        return max(1, self.gpus_per_node)

    def minutes(self) -> int:
        """`time` in minutes, read as sbatch reads it."""
        match = _TIME.match(self.time.strip())
        if not match:
            raise ValueError(f"--slurm.time: expected MM, MM:SS, HH:MM:SS or D-HH[:MM[:SS]], got {self.time!r}")
        days, first, second, third = (int(g) if g else None for g in match.groups())
        if days is not None:  # D-HH, D-HH:MM, D-HH:MM:SS
            seconds = days * 86400 + first * 3600 + (second or 0) * 60 + (third or 0)
        elif third is not None:  # HH:MM:SS
            seconds = first * 3600 + second * 60 + third
        elif second is not None:  # MM:SS
            seconds = first * 60 + second
        else:  # MM
            seconds = first * 60
        if seconds <= 0:
            raise ValueError(f"--slurm.time: must be more than 0, got {self.time!r}")
        return max(1, -(-seconds // 60))

    def extra(self) -> dict[str, Any]:
        parameters: dict[str, Any] = {"requeue": True}  # requeue.py requeues the job on the warning signal
        for option in self.sbatch:
            key, sep, value = option.lstrip("-").partition("=")
            if not key:
                raise ValueError(f"--slurm.sbatch: expected KEY=VALUE or KEY (an sbatch option), got {option!r}")
            parameters[key.replace("-", "_")] = value if sep else True
        return parameters

    def executor_parameters(self, name: str) -> dict[str, Any]:
        for option in ("nodes", "gpus_per_node", "signal_delay_s"):
            if getattr(self, option) < 0 or (option == "nodes" and self.nodes < 1):
                raise ValueError(f"--slurm.{option}: expected a positive number, got {getattr(self, option)}")
        parameters: dict[str, Any] = {
            "name": name, "timeout_min": self.minutes(), "nodes": self.nodes,
            "tasks_per_node": self.tasks_per_node, "slurm_signal_delay_s": self.signal_delay_s,
            "slurm_additional_parameters": self.extra()}
        if self.gpus_per_node:
            parameters["gpus_per_node"] = self.gpus_per_node
        if self.cpus_per_task:
            parameters["cpus_per_task"] = self.cpus_per_task
        for option in ("partition", "account", "qos", "mem", "constraint"):
            if getattr(self, option):
                parameters[f"slurm_{option}"] = getattr(self, option)
        return parameters

    def cell_args(self) -> list[str]:
        """What the cell's LightningCLI needs to span the job's devices."""
        if not self.gpus_per_node:
            return []
        return ["--trainer.accelerator", "gpu", "--trainer.devices", str(self.gpus_per_node),
                "--trainer.num_nodes", str(self.nodes)]

    @property
    def devices(self) -> int:
        return self.tasks_per_node * self.nodes


def check_sbatch() -> None:
    if shutil.which("sbatch") is None:
        raise ValueError("--launcher slurm: no `sbatch` on PATH (no SLURM here); "
                         "use --launcher local to run the cells on this machine")


def run_cell_job(cell: Cell, base_args: list[str], out: str) -> str:
    """The job's function: one cell, requeued on SLURM's warning signal. Returns its status."""
    install_signal_handlers()  # first: USR1's default action ends the process
    threads = int(os.environ.get("SLURM_CPUS_PER_TASK", "1"))
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    import torch

    torch.set_num_threads(threads)
    from ..third_party_warnings import silence_third_party_deprecations
    from .grid import run_cell

    silence_third_party_deprecations()  # the job's entry point, like the command line
    try:
        run_cell(cell, base_args, Path(out), requeue_on_signal=True)
    except Requeued as requeued:
        return f"requeued: {requeued}"
    return "finished"


@dataclass
class Submission:
    array: str
    jobs: dict[str, str]  # cell name -> job id
    logs: dict[str, dict[str, str]]  # cell name -> {"stdout": path, "stderr": path}
    time: str


def submissions_path(out: Path) -> Path:
    return Path(out) / "slurm" / SUBMISSIONS_FILE


def read_submissions(out: Path) -> list[Submission]:
    try:
        records = json.loads(submissions_path(out).read_text())
    except (OSError, ValueError):
        return []
    return [Submission(**record) for record in records]


def latest_jobs(out: Path) -> dict[str, tuple[str, dict[str, str]]]:
    """cell name -> (job id, log paths) of the cell's latest submission."""
    latest: dict[str, tuple[str, dict[str, str]]] = {}
    for submission in read_submissions(out):
        for name, job in submission.jobs.items():
            latest[name] = (job, submission.logs.get(name, {}))
    return latest


def queue_states() -> dict[str, tuple[str, str, str]]:
    """job id -> (state, elapsed, reason) of every job in the queue, array tasks one by one."""
    try:
        listed = subprocess.run(["squeue", "--array", "--noheader", "--format", "%i|%T|%M|%r"],
                                capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as err:
        raise RuntimeError(f"squeue could not be run: {err}") from None
    if listed.returncode != 0:
        raise RuntimeError(f"squeue failed: {listed.stderr.strip() or listed.stdout.strip()}")
    states = {}
    for line in listed.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 4:
            states[parts[0]] = (parts[1], parts[2], parts[3])
    return states


def queued_cells(out: Path, names: Sequence[str]) -> dict[str, str]:
    """Cells of `names` whose latest job is still in the queue: name -> job id."""
    latest = latest_jobs(out)
    if not latest:
        return {}
    states = queue_states()
    return {name: latest[name][0] for name in names
            if name in latest and states.get(latest[name][0], ("",))[0] in QUEUED_STATES}


def submit(cells: Sequence[Cell], base_args: Sequence[str], out: Path, options: SlurmOptions,
           job_name: str) -> Submission:
    """One job array for `cells`; recorded in submissions.json. sbatch's refusal is a ValueError
    carrying sbatch's own message, and nothing is submitted."""
    import submitit

    executor = submitit.AutoExecutor(folder=Path(out) / "slurm" / "%j", cluster="slurm")
    executor.update_parameters(**options.executor_parameters(job_name),
                               slurm_array_parallelism=max(1, len(cells)))
    try:  # submitit also prints sbatch's complaint; the error below carries it in one line
        with contextlib.redirect_stderr(io.StringIO()), executor.batch():
            jobs = [executor.submit(run_cell_job, cell, list(base_args), str(out)) for cell in cells]
    except submitit.core.utils.FailedJobError as err:
        _remove_if_empty(Path(out) / "slurm")
        message = " ".join(str(err).split())
        sbatch = re.search(r"sbatch: error: (.*?)(?: sbatch: error:|$)", message)
        raise ValueError(f"--slurm: sbatch refused the jobs: {sbatch.group(1) if sbatch else message}") from None
    submission = Submission(
        array=jobs[0].job_id.split("_")[0], jobs={c.name: j.job_id for c, j in zip(cells, jobs)},
        logs={c.name: {"stdout": str(j.paths.stdout), "stderr": str(j.paths.stderr)} for c, j in zip(cells, jobs)},
        time=dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"))
    records = [dataclasses.asdict(s) for s in read_submissions(out)] + [dataclasses.asdict(submission)]
    write_json_atomic(submissions_path(out), records, indent=1)
    return submission


def _remove_if_empty(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), reverse=True) + [folder]:
        with contextlib.suppress(OSError):
            path.rmdir()  # folders only, and only empty ones


def clear_cell(out: Path, cell: Cell) -> None:
    """`--force` under SLURM: the submitter removes the cell's folder, so that a requeued job
    (which runs the same submission again) resumes rather than starting over."""
    shutil.rmtree(cell_folder(out, cell), ignore_errors=True)
