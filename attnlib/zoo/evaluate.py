"""Accuracy of a zoo model on rendered scenes."""

from __future__ import annotations

import torch

from . import scenes


@torch.no_grad()
def predict(model: torch.nn.Module, data: scenes.SceneSet, batch_size: int = 250) -> torch.Tensor:
    """Predicted labels (n,) for every scene of ``data``."""
    device = next(model.parameters()).device
    model.eval()
    out = []
    for i in range(0, len(data), batch_size):
        x, _ = data.tensors(slice(i, i + batch_size), device=device)
        out.append(model(x).argmax(1).cpu())
    return torch.cat(out)


def accuracy(model: torch.nn.Module, data: scenes.SceneSet) -> float:
    """Share of scenes whose label is predicted correctly."""
    return float((predict(model, data) == torch.from_numpy(data.labels)).float().mean())
