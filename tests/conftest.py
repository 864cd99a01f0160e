import pytest
import torch

# Tests use small tensors: one intra-op thread avoids OpenMP spin-waits that
# stall small ops on a 2-core machine. The op tests run a 2-thread case
# explicitly (test_softpool_op.py::test_two_threads_match_one).
torch.set_num_threads(1)


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
