"""Argument and input checks shared by every block, so each error names what was wrong and what is allowed."""

from __future__ import annotations

import math
from typing import Iterable

import torch


def check_positive_int(value, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` if it is an int ``>= minimum``; otherwise raise ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_positive_float(value, name: str) -> float:
    """Return ``float(value)`` if it is a finite number > 0; otherwise raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_choice(value, name: str, allowed: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``allowed``; otherwise raise ``ValueError`` listing them."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


def check_divisible(channels: int, groups: int, channels_name: str, groups_name: str = "groups") -> None:
    """Raise ``ValueError`` unless ``channels`` is divisible by ``groups``."""
    if channels % groups:
        raise ValueError(f"{channels_name}={channels} must be divisible by {groups_name}={groups}")


def reduced_width(channels: int, reduction, *, minimum: int = 0, argument: str = "reduction") -> int:
    """The reduced width ``C_r = max(floor(C / r), minimum)`` used by every squeeze-excite style MLP.

    ``minimum`` is a paper's lower bound (SK's ``L``, coordinate attention's 8); without one, no clamping.

    Raises ``ValueError`` (naming ``argument``) when ``r`` is not a positive number or when the width
    would be 0, instead of silently building a layer with no units.
    """
    check_positive_int(channels, "channels")
    r = check_positive_float(reduction, argument)
    width = max(int(channels // r), minimum)
    if width < 1:
        raise ValueError(
            f"{argument}={reduction!r} leaves a reduced width of 0 for channels={channels}; "
            f"{argument} must be <= {channels}"
        )
    return width


def check_input(block: torch.nn.Module, x, channels: int | None, *, ndim: int | Iterable[int] = 4) -> None:
    """Check the input of ``block``: a tensor of rank ``ndim`` with ``channels`` channels on axis 1 and no
    zero-sized dimension. Raises ``ValueError`` naming the block, the expected and the received shape."""
    name = type(block).__name__
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} expects a torch.Tensor, got {type(x).__name__}")
    ranks = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if x.dim() not in ranks:
        spatial = {3: "L", 4: "H, W", 5: "T, H, W"}
        expected = " or ".join(f"(B, {channels if channels else 'C'}, {spatial.get(r, '...')})" for r in ranks)
        raise ValueError(f"{name} expects an input of shape {expected}; got {tuple(x.shape)}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(
            f"{name} was built for {channels} channels: expects shape (B, {channels}, ...); got {tuple(x.shape)}"
        )
    if any(s == 0 for s in x.shape):
        raise ValueError(
            f"{name} expects (B, {channels if channels else 'C'}, ...) with every size >= 1; got {tuple(x.shape)}"
        )
    if not (x.is_floating_point()):
        raise ValueError(f"{name} expects a floating-point input, got dtype {x.dtype}")


def conv_arguments(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias) -> dict:
    """Validate ``nn.Conv2d``-style arguments of a convolution-replacing block; return them normalised.

    ``out_channels=None`` means ``in_channels``; ``padding=None`` means "same" padding
    ``dilation * (kernel_size // 2)``. Raises ``ValueError`` naming the argument and the allowed values.
    """
    check_positive_int(in_channels, "in_channels")
    out_channels = in_channels if out_channels is None else out_channels
    check_positive_int(out_channels, "out_channels")
    check_positive_int(kernel_size, "kernel_size (a single int: square kernels)")
    check_positive_int(stride, "stride")
    check_positive_int(dilation, "dilation")
    check_positive_int(groups, "groups")
    check_divisible(in_channels, groups, "in_channels")
    check_divisible(out_channels, groups, "out_channels")
    if padding is None:
        padding = dilation * (kernel_size // 2)
    check_positive_int(padding, "padding", minimum=0)
    if not isinstance(bias, bool):
        raise ValueError(f"bias must be True or False, got {bias!r}")
    return dict(in_channels=in_channels, out_channels=out_channels, kernel_size=kernel_size, stride=stride,
                padding=padding, dilation=dilation, groups=groups, bias=bias)
