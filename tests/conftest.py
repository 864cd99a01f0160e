import os
import socket
import time
from pathlib import Path

import pytest
import torch

from softpool_video.third_party_warnings import as_pytest_filterwarnings

# Tests use small tensors: one intra-op thread avoids OpenMP spin-waits that
# stall small ops on a 2-core machine. The op tests run a 2-thread case
# explicitly (test_softpool_op.py::test_two_threads_match_one).
torch.set_num_threads(1)

# jsonargparse reports each deprecated use once per process unless told otherwise: report every
# one, so that a deprecated call from our code meets the error::DeprecationWarning filter.
os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "all")


def pytest_configure(config):
    for line in as_pytest_filterwarnings():  # the command line's own list of third-party deprecations
        config.addinivalue_line("filterwarnings", line)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def one_thread():
    """For modules of small tensors (`pytestmark = pytest.mark.usefixtures("one_thread")`):
    one intra-op thread, whatever an earlier test set; restored after the module."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def gloo_port() -> int:
    """A TCP port nothing listens on now, for a test's own gloo process group."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def two_gloo_ranks(gloo_port):
    """Runs `worker(rank, 2, port, *args)` in two forked processes (a gloo group of their own);
    fails the test if they have not finished within `timeout` seconds."""
    import torch.multiprocessing as mp

    def run(worker, *args, timeout: float = 60.0) -> None:
        context = mp.start_processes(worker, args=(2, gloo_port, *args), nprocs=2, join=False,
                                     start_method="fork")
        deadline = time.monotonic() + timeout
        while not context.join(timeout=1):
            if time.monotonic() > deadline:
                for process in context.processes:
                    process.kill()
                pytest.fail(f"the two gloo ranks did not finish within {timeout:g} s")
    return run


class _Parsed(Exception):
    def __init__(self, parser):
        self.parser = parser


@pytest.fixture(scope="session")
def fit_parser():
    """VideoCLI's `fit` parser, built once and stopped before parsing: checks configs and options."""
    from softpool_video.training.cli import VideoCLI

    class ParserOnly(VideoCLI):
        def parse_arguments(self, parser, args):
            raise _Parsed(parser)

    with pytest.raises(_Parsed) as caught:
        ParserOnly(args=["fit"])
    return caught.value.parser


def _slurm_answers() -> bool:
    import subprocess
    try:
        state = subprocess.run(["sinfo", "--noheader", "--format", "%t"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return state.returncode == 0 and bool(state.stdout.strip())  # the controller answers, whatever the node does


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A real SLURM for the `slurm` tests: the one SLURM_CONF names when it answers (`make
    test-slurm` starts one), else a single-node cluster of this session's own
    (scripts/slurm/local_cluster.sh; root), stopped after the session. A cluster that cannot
    start fails the tests with the reason; it never skips them."""
    import subprocess
    from pathlib import Path

    if os.environ.get("SLURM_CONF") and _slurm_answers():
        yield os.environ["SLURM_CONF"]
        return
    script = Path(__file__).resolve().parents[1] / "scripts" / "slurm" / "local_cluster.sh"
    folder = tmp_path_factory.mktemp("slurm_cluster")
    up = subprocess.run([str(script), "up", str(folder)], capture_output=True, text=True, timeout=900)
    if up.returncode != 0:
        pytest.fail(f"the local SLURM cluster did not start: {(up.stderr or up.stdout).strip()}", pytrace=False)
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(folder / "slurm.conf")
    try:
        yield os.environ["SLURM_CONF"]
    finally:
        subprocess.run([str(script), "down", str(folder)], capture_output=True, timeout=120)
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """Demo videos at the smallest size the generator allows (22 groups x 6 classes, 32x32);
    shared by the training and study tests of the session through the base temp folder."""
    from softpool_video.datamodules import make_demo_dataset
    return make_demo_dataset(tmp_path_factory.getbasetemp() / "training_demo_tiny", groups=22, clips_per_group=1,
                             width=32, height=32)
