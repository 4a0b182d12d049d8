"""Device selection used by the book and the model zoo."""

import torch


def device() -> torch.device:
    """Return ``cuda`` when a CUDA GPU is usable, else ``cpu``.

    Every chapter moves its tensors with ``.to(attnlib.device())``, so the same notebook runs on a
    laptop, in CI (no GPU) and on a Colab GPU runtime.
    """
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
