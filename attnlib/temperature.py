"""Setting and annealing the softmax temperature of dynamic blocks.

DY-CNN (Chen et al. 2020) trains with a large softmax temperature at first (:math:`\\tau = 30`), so that
every kernel receives gradient while the attention is still untrained, and lowers it linearly to 1.
Blocks take part when they define ``set_temperature(tau)`` (in attnlib: :class:`DynamicConv2d`).

Usage::

    annealer = TemperatureAnnealer(model, start=30.0, duration=10)   # 10 epochs (or steps)
    for epoch in range(num_epochs):
        train_one_epoch(model)
        annealer.step()                                              # tau: 30 -> 27.1 -> ... -> 1, then 1

The schedule is :math:`\\tau(t) = \\tau_0 + (\\tau_1 - \\tau_0)\\, \\min(t, T)/T`: it equals ``start`` at
:math:`t = 0`, ``end`` (default 1) exactly at :math:`t = T` and stays there afterwards.
"""

from __future__ import annotations

from torch import nn

from .validation import check_positive_int, check_temperature

__all__ = ["TemperatureAnnealer", "linear_temperature", "set_temperature", "temperature_blocks"]


def temperature_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The ``(name, module)`` pairs of ``model`` (itself included) that have a ``set_temperature`` method."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    return [(n, m) for n, m in model.named_modules() if callable(getattr(m, "set_temperature", None))]


def set_temperature(model: nn.Module, temperature: float) -> int:
    """Set the softmax temperature of every dynamic block in ``model``; return how many were set.

    Raises ``ValueError`` when ``temperature`` is not a finite number >= 1e-3
    (``validation.MIN_TEMPERATURE``) or when ``model`` contains no
    block with a temperature (a silent no-op would hide a wrong model).
    """
    temperature = check_temperature(temperature)
    blocks = temperature_blocks(model)
    if not blocks:
        raise ValueError(f"set_temperature: {type(model).__name__} contains no block with a temperature "
                         "(a module with a set_temperature method, e.g. DynamicConv2d)")
    for _, block in blocks:
        block.set_temperature(temperature)
    return len(blocks)


def linear_temperature(t: int, duration: int, *, start: float = 30.0, end: float = 1.0) -> float:
    """The temperature after ``t`` epochs (or steps) of a linear schedule from ``start`` to ``end`` over
    ``duration`` epochs: ``start`` at ``t = 0``, exactly ``end`` for every ``t >= duration``."""
    check_positive_int(t, "t", minimum=0, maximum=2**62)
    check_positive_int(duration, "duration", maximum=2**62)
    start = check_temperature(start, "start")
    end = check_temperature(end, "end")
    if t >= duration:
        return end
    return start + (end - start) * t / duration


class TemperatureAnnealer:
    """Anneals the temperature of every dynamic block in a model linearly from ``start`` to ``end``.

    Args:
        model: the model; every module with a ``set_temperature`` method is updated.
        start: :math:`\\tau_0` (DY-CNN: 30).
        end: final temperature (DY-CNN: 1).
        duration: T, the number of :meth:`step` calls (epochs or optimiser steps, your choice) after which
            the temperature is exactly ``end``.

    The constructor sets the temperature to ``start``. Each :meth:`step` advances the schedule by one
    and sets the new temperature, which it returns.

    Example:
        >>> import attnlib
        >>> from attnlib.temperature import TemperatureAnnealer
        >>> conv = attnlib.create_block("dynamic_conv", 8)
        >>> annealer = TemperatureAnnealer(conv, start=30.0, duration=10)
        >>> [annealer.step() for _ in range(5)][-1]
        15.5
    """

    def __init__(self, model: nn.Module, *, start: float = 30.0, end: float = 1.0, duration: int):
        self.start = check_temperature(start, "start")
        self.end = check_temperature(end, "end")
        self.duration = check_positive_int(duration, "duration", maximum=2**62)
        self.model = model
        self.t = 0
        set_temperature(model, self.start)
        self.temperature = self.start

    def step(self) -> float:
        """Advance the schedule by one epoch (or step), set and return the new temperature."""
        self.t += 1
        self.temperature = linear_temperature(self.t, self.duration, start=self.start, end=self.end)
        set_temperature(self.model, self.temperature)
        return self.temperature

    def state_dict(self) -> dict:
        """What is needed to resume the schedule: ``{"t": ...}``."""
        return {"t": self.t}

    def load_state_dict(self, state: dict) -> None:
        """Resume the schedule at ``state["t"]`` and set the matching temperature."""
        self.t = check_positive_int(state["t"], "t", minimum=0, maximum=2**62)
        self.temperature = linear_temperature(self.t, self.duration, start=self.start, end=self.end)
        set_temperature(self.model, self.temperature)

    def __repr__(self) -> str:
        return (f"TemperatureAnnealer(start={self.start:g}, end={self.end:g}, duration={self.duration}, "
                f"t={self.t}, temperature={self.temperature:g})")
