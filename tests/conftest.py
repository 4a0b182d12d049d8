import pytest
import torch

# One thread per test process: the suite runs as `pytest -n 2` on 2 cores, and tiny tensors gain
# nothing from intra-op threads (measured: 4x faster on a loaded 2-core machine).
torch.set_num_threads(1)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=["cpu", "cuda"])
def device(request):
    """Every generic test runs on CPU, and on CUDA when a GPU is present (skipped otherwise)."""
    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    return torch.device(request.param)
