"""The temperature helper: set / anneal the softmax temperature of every dynamic block in a model."""

import pytest
import torch

import attnlib
from attnlib.temperature import TemperatureAnnealer, linear_temperature, set_temperature


def _model():
    return torch.nn.Sequential(
        attnlib.create_block("dynamic_conv", 8),
        torch.nn.ReLU(),
        torch.nn.Sequential(attnlib.create_block("dynamic_conv", 8, 16, 1)),
        attnlib.create_block("se", 16),
    )


def _temperatures(model):
    return [m.temperature for m in model.modules() if hasattr(m, "set_temperature")]


def test_set_temperature_reaches_every_dynamic_block():
    model = _model()
    assert set_temperature(model, 7.5) == 2
    assert _temperatures(model) == [7.5, 7.5]


def test_annealer_is_linear_and_ends_exactly_at_one():
    model = _model()
    annealer = TemperatureAnnealer(model, start=30.0, duration=10)
    assert _temperatures(model) == [30.0, 30.0]
    values = [annealer.step() for _ in range(15)]
    assert values[0] == pytest.approx(30.0 - 2.9)
    assert values[4] == pytest.approx(15.5)                   # middle of the schedule: (30 + 1) / 2
    assert values[9] == 1.0 and _temperatures(model) == [1.0, 1.0]  # exactly 1 at the end of the schedule
    assert values[10:] == [1.0] * 5                             # and stays there
    assert all(a > b for a, b in zip(values[:9], values[1:10]))


def test_annealer_resumes_from_state_dict():
    model = _model()
    annealer = TemperatureAnnealer(model, start=30.0, duration=4)
    annealer.step()
    state = annealer.state_dict()
    resumed = TemperatureAnnealer(model, start=30.0, duration=4)
    assert _temperatures(model) == [30.0, 30.0]
    resumed.load_state_dict(state)
    assert _temperatures(model) == [pytest.approx(30.0 - 29.0 / 4)] * 2
    assert [resumed.step() for _ in range(3)][-1] == 1.0


def test_linear_temperature_values():
    assert linear_temperature(0, 4) == 30.0
    assert linear_temperature(2, 4, start=9.0, end=1.0) == 5.0
    assert linear_temperature(4, 4, start=9.0) == 1.0
    assert linear_temperature(100, 4, start=9.0, end=2.0) == 2.0


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_non_positive_temperature_raises(bad):
    with pytest.raises(ValueError, match="temperature"):
        set_temperature(_model(), bad)
    with pytest.raises(ValueError, match="start"):
        TemperatureAnnealer(_model(), start=bad, duration=3)
    with pytest.raises(ValueError, match="end"):
        TemperatureAnnealer(_model(), end=bad, duration=3)


def test_bad_duration_and_models_without_dynamic_blocks_raise():
    with pytest.raises(ValueError, match="duration"):
        TemperatureAnnealer(_model(), duration=0)
    with pytest.raises(ValueError, match="no block with a temperature"):
        set_temperature(torch.nn.Sequential(attnlib.create_block("se", 16)), 2.0)
