"""The base class shared by every attnlib block: input checks and attention capture."""

from __future__ import annotations

import torch
from torch import nn

from ..validation import check_input


class AttentionBlock(nn.Module):
    """Base class of every registered block.

    Subclasses call :meth:`_check` at the top of ``forward`` and :meth:`_record` for each attention
    tensor they document under "Captured:". Outside :func:`attnlib.capture`, ``_record`` is a no-op and
    the block stores nothing.
    """

    #: registry name, set by :func:`attnlib.register`
    registry_name: str = ""
    #: accepted input ranks (4 means ``(B, C, H, W)``)
    input_ndim: tuple[int, ...] = (4,)

    def _store_conv_arguments(self, args: dict) -> None:
        """Keep the checked ``nn.Conv2d``-style arguments (``validation.conv_arguments``) as attributes,
        named as ``nn.Conv2d`` names them, for the blocks that replace a convolution."""
        for name in ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups"):
            setattr(self, name, args[name])

    def _check(self, x: torch.Tensor, channels: int | None) -> None:
        check_input(self, x, channels, ndim=self.input_ndim)

    @property
    def _capturing(self) -> bool:
        return "_capture_sink" in self.__dict__

    @property
    def _capture_queries(self):
        sink = self.__dict__.get("_capture_sink")
        return None if sink is None else sink.queries

    def _record(self, key: str, tensor: torch.Tensor) -> None:
        sink = self.__dict__.get("_capture_sink")
        if sink is not None:
            sink.store(key, tensor)
