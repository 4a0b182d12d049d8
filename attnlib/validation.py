"""Argument and input checks shared by every block, so each error names what was wrong and what is allowed."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Iterable

import torch


#: Upper bound of every integer size argument (channels, widths, kernel sizes, strides, paddings, numbers
#: of kernels, codewords or branches). Larger values would fail deep inside torch (an int64 overflow of a
#: tensor size, an allocation of terabytes) with a message that names no argument.
MAX_SIZE = 2**16

#: Range of every positive float hyper-parameter (reductions, ratios, temperatures, scales): the normal
#: float32 numbers. A smaller value rounds to 0 (or a subnormal) in float32 and a larger one to infinity.
FLOAT_MIN = float(torch.finfo(torch.float32).tiny)   # 1.1754944e-38
FLOAT_MAX = float(torch.finfo(torch.float32).max)    # 3.4028235e+38


def describe(value) -> str:
    """``repr(value)`` for an error message, shortened for enormous values (an int of 10**5000 digits has
    no repr in Python >= 3.11, and a long list would drown the message)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30:
        return f"an integer of {len(str(abs(value))) if value.bit_length() < 14000 else 'over 4000'} digits"
    try:
        text = repr(value)
    except Exception:  # a repr that itself fails must not hide the real error
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 80 else text[:77] + "..."


def check_positive_int(value, name: str, *, minimum: int = 1, maximum: int = MAX_SIZE) -> int:
    """Return ``value`` if it is an int in ``[minimum, maximum]``; otherwise raise ``ValueError`` naming
    ``name`` and the range. ``maximum`` defaults to :data:`MAX_SIZE`."""
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise ValueError(f"{name} must be an integer >= {minimum} and <= {maximum}, got {describe(value)}")
    return value


def as_float(value, name: str, *, low: float = -FLOAT_MAX, high: float = FLOAT_MAX) -> float:
    """``float(value)`` for a real number (int or float, not bool) in ``[low, high]``; otherwise raise
    ``ValueError`` naming ``name`` and the range (an int too large for a float included)."""
    number = _finite_in(value, low, high)
    if number is None:
        raise ValueError(f"{name} must be a finite number in [{low:g}, {high:g}], got {describe(value)}")
    return number


def _finite_in(value, low: float, high: float) -> float | None:
    """``float(value)`` if ``value`` is a real number (int or float, not bool) whose float is finite and in
    ``[low, high]``, else ``None`` (an int too large for a float included)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) and low <= number <= high else None


def check_positive_float(value, name: str, *, minimum: float = FLOAT_MIN, maximum: float = FLOAT_MAX) -> float:
    """Return ``float(value)`` if it is a finite number in ``[minimum, maximum]`` (by default the positive
    normal float32 numbers, :data:`FLOAT_MIN` to :data:`FLOAT_MAX`); otherwise raise ``ValueError`` naming
    ``name`` and the range."""
    number = _finite_in(value, minimum, maximum)
    if number is None:
        raise ValueError(f"{name} must be a finite number > 0, in [{minimum:g}, {maximum:g}], got {describe(value)}")
    return number


#: Smallest softmax temperature a block accepts. Below it the softmax is a hard argmax in every float
#: format (a logit gap of 0.1 already gives exp(-100)), and in float16 the temperature itself rounds to a
#: subnormal or to 0, so the logits / temperature overflow and the attention turns into NaN.
MIN_TEMPERATURE = 1e-3


def check_temperature(value, name: str = "temperature") -> float:
    """A softmax temperature: a finite number in [:data:`MIN_TEMPERATURE`, :data:`FLOAT_MAX`]."""
    return check_positive_float(value, name, minimum=MIN_TEMPERATURE)


def check_bool(value, name: str) -> bool:
    """Return ``value`` if it is ``True`` or ``False``; otherwise raise ``ValueError`` naming ``name``."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {describe(value)}")
    return value


def check_momentum(value, name: str = "bn_momentum") -> float:
    """A BatchNorm momentum in PyTorch's convention (the weight of the new batch statistic in the running
    average, PyTorch's default 0.1), a number in [0, 1]. Caffe's ``moving_average_fraction`` m is the
    weight of the *old* average: it is ``1 - m`` here."""
    return as_float(value, name, low=0.0, high=1.0)


def check_choice(value, name: str, allowed: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``allowed``; otherwise raise ``ValueError`` listing them."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {describe(value)}")
    return value


def check_divisible(channels: int, groups: int, channels_name: str, groups_name: str = "groups") -> None:
    """Raise ``ValueError`` unless ``channels`` is divisible by ``groups``."""
    if channels % groups:
        raise ValueError(f"{channels_name}={channels} must be divisible by {groups_name}={groups}")


def reduced_width(channels: int, reduction, *, minimum: int = 0, argument: str = "reduction",
                  channels_name: str = "channels") -> int:
    """The reduced width ``C_r = max(floor(C / r), minimum)`` used by every squeeze-excite style MLP.

    ``minimum`` is a paper's lower bound (SK's ``L``, coordinate attention's 8); without one, no clamping.
    The floor is exact for the decimal ``r`` as written: ``r = 1.6`` with ``C = 16`` gives 10 (binary
    floating point would give ``16 // 1.6 == 9.0``, because the float nearest 1.6 is slightly larger).

    Raises ``ValueError`` (naming ``argument`` and ``channels_name``, the block's name for C) when ``r`` is
    not a positive number, when the width would be 0 (instead of silently building a layer with no units)
    or larger than :data:`MAX_SIZE`.
    """
    check_positive_int(channels, channels_name)
    r = check_positive_float(reduction, argument)
    exact = Fraction(repr(r))                   # the decimal the user wrote: 1.6 -> 8/5, not 1.600...0888
    width = max(math.floor(channels / exact), minimum)
    if width < 1:
        raise ValueError(
            f"{argument}={describe(reduction)} leaves a reduced width of 0 for {channels_name}={channels}; "
            f"{argument} must be <= {channels}"
        )
    if width > MAX_SIZE:
        raise ValueError(
            f"{argument}={describe(reduction)} gives a reduced width of {width} for {channels_name}={channels}, above "
            f"the limit {MAX_SIZE}; {argument} must be >= {channels / MAX_SIZE:g}"
        )
    return width


def check_input(block: torch.nn.Module, x, channels: int | None, *, ndim: int | Iterable[int] = 4) -> None:
    """Check the input of ``block``: a dense (strided) floating-point tensor of rank ``ndim`` with
    ``channels`` channels on axis 1 and no zero-sized dimension, on the device and in the dtype of the
    block's parameters. Raises ``ValueError`` naming the block, what it expects and what it received
    (``TypeError`` when ``x`` is not a tensor at all).

    The dtype must match exactly (float32 parameters take float32 inputs): torch would otherwise stop
    inside the first layer with a message that names no block. Under ``torch.autocast`` the dtypes may
    differ, as autocast casts each operation itself.
    """
    name = type(block).__name__
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} expects a torch.Tensor, got {type(x).__name__}")
    if x.layout != torch.strided:
        raise ValueError(f"{name} expects a dense (strided) tensor, got layout {x.layout}; convert it with "
                         f"x.to_dense()")
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
    param = next(block.parameters(), None)
    if param is None:
        return
    if x.device != param.device:
        raise ValueError(f"{name} has its parameters on {param.device} but the input is on {x.device}; move one "
                         f"of them, e.g. x.to({str(param.device)!r})")
    if x.dtype != param.dtype and not torch.is_autocast_enabled(x.device.type):
        raise ValueError(f"{name} has {param.dtype} parameters but the input is {x.dtype}; convert the input "
                         f"(x.to({param.dtype})) or the block (block.to({x.dtype}))")


def check_batch_statistics(block: torch.nn.Module, values: int, where: str, x: torch.Tensor) -> None:
    """In training mode, raise ``ValueError`` when a BatchNorm of ``block`` would see only ``values`` = 1
    value per channel (a batch variance needs 2), naming the block, the BatchNorm (``where``) and the input.
    torch's own message names neither."""
    if block.training and values < 2:
        raise ValueError(
            f"{type(block).__name__}: this input cannot be used in training mode: {where} normalises over "
            f"{values} value per channel, and a batch variance needs at least 2; got input {tuple(x.shape)}. "
            f"Use a larger batch or a larger map, or eval mode (running statistics)."
        )


def check_conv_input(block: torch.nn.Module, x: torch.Tensor) -> None:
    """Raise ``ValueError`` when the padded input of a convolution-replacing block (attributes
    ``kernel_size``, ``padding``, ``dilation``) is smaller than its dilated kernel, so the output would
    have no position; the message names the block, the sizes and the smallest input allowed."""
    span = block.dilation * (block.kernel_size - 1) + 1  # the dilated kernel's extent
    smallest = max(1, span - 2 * block.padding)
    H, W = x.shape[-2], x.shape[-1]
    if H < smallest or W < smallest:
        raise ValueError(
            f"{type(block).__name__}: the input {tuple(x.shape)} is smaller than the kernel: kernel_size="
            f"{block.kernel_size}, dilation={block.dilation} span {span} pixels and padding={block.padding} adds "
            f"{2 * block.padding}, so H and W must be at least {smallest}"
        )


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
    span = dilation * (kernel_size - 1) + 1
    if span > MAX_SIZE:
        raise ValueError(f"kernel_size={kernel_size} with dilation={dilation} spans {span} pixels; at most "
                         f"{MAX_SIZE} are allowed")
    if padding is None:
        padding = dilation * (kernel_size // 2)
    check_positive_int(padding, "padding", minimum=0)
    check_bool(bias, "bias")
    return dict(in_channels=in_channels, out_channels=out_channels, kernel_size=kernel_size, stride=stride,
                padding=padding, dilation=dilation, groups=groups, bias=bias)
