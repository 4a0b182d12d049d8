"""The base class shared by every attnlib block: input checks, attention capture, and construction
errors that name the block."""

from __future__ import annotations

import functools

import torch
from torch import nn

from ..capture import SINK_ATTRIBUTE, current_sink
from ..validation import check_batch_statistics, check_conv_input, check_input, describe


def _named_construction_errors(init):
    """Wrap a block's ``__init__`` so that a failure torch reports while allocating the parameters
    (a ``RuntimeError`` such as "not enough memory", a ``MemoryError`` or an ``OverflowError``) becomes a
    ``ValueError`` naming the block and the arguments it was given. Errors of the block's own checks are
    ``ValueError``/``TypeError`` already and pass unchanged."""

    @functools.wraps(init)
    def wrapped(self, *args, **kwargs):
        try:
            init(self, *args, **kwargs)
        except (RuntimeError, MemoryError, OverflowError) as exc:
            given = ", ".join([describe(a) for a in args] + [f"{k}={describe(v)}" for k, v in kwargs.items()])
            raise ValueError(
                f"{type(self).__name__}({given}): the parameters cannot be allocated ({type(exc).__name__}: "
                f"{str(exc)[:200]}); use smaller sizes"
            ) from exc

    wrapped._names_construction_errors = True
    return wrapped


class AttentionBlock(nn.Module):
    """Base class of every registered block.

    Subclasses call :meth:`_check` at the top of ``forward`` and :meth:`_record` for each attention
    tensor they document under "Captured:". Outside :func:`attnlib.capture`, ``_record`` is a no-op and
    the block stores nothing. A copy or a pickle of a block never carries a capture's sink.
    """

    #: registry name, set by :func:`attnlib.register`
    registry_name: str = ""
    #: accepted input ranks (4 means ``(B, C, H, W)``)
    input_ndim: tuple[int, ...] = (4,)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None and not getattr(init, "_names_construction_errors", False):
            cls.__init__ = _named_construction_errors(init)

    def __getstate__(self):
        # copy.deepcopy, pickle and torch.save all go through here: leave every capture's sink behind
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__
        state = dict(state)
        state.pop(SINK_ATTRIBUTE, None)
        return state

    def _store_conv_arguments(self, args: dict) -> None:
        """Keep the checked ``nn.Conv2d``-style arguments (``validation.conv_arguments``) as attributes,
        named as ``nn.Conv2d`` names them, for the blocks that replace a convolution."""
        for name in ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups"):
            setattr(self, name, args[name])

    def _check(self, x: torch.Tensor, channels: int | None) -> None:
        check_input(self, x, channels, ndim=self.input_ndim)

    def _check_conv_input(self, x: torch.Tensor) -> None:
        """For convolution-replacing blocks: the padded input must cover the dilated kernel."""
        check_conv_input(self, x)

    def _check_batch_statistics(self, values: int, where: str, x: torch.Tensor) -> None:
        """In training mode, a BatchNorm (``where``) must see at least 2 values per channel."""
        check_batch_statistics(self, values, where, x)

    @property
    def _capturing(self) -> bool:
        return current_sink(self) is not None

    @property
    def _capture_queries(self):
        sink = current_sink(self)
        return None if sink is None else sink.queries

    def _record(self, key: str, tensor: torch.Tensor) -> None:
        sink = current_sink(self)
        if sink is not None:
            sink.store(key, tensor)
