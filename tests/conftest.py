import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    """Tests compare numbers across runs; one thread keeps CPU kernels' reduction order fixed."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
