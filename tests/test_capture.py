"""attnlib.capture: names, nesting, detaching, cleanup and argument checks."""

import pytest
import torch
from torch import nn

import attnlib


def _model():
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1),
        attnlib.create_block("se", 32),
        nn.Sequential(nn.Conv2d(32, 32, 3, padding=1), attnlib.create_block("se", 32, reduction=4)),
    )


def test_capture_names_every_block_by_its_module_path():
    model = _model()
    with attnlib.capture(model) as maps:
        model(torch.randn(2, 3, 8, 8))
    assert set(maps) == {"1", "2.1"}
    assert maps["1"]["gate"].shape == (2, 32, 1, 1)


def test_captured_gate_is_the_gate_that_scaled_the_input():
    model = _model().eval()
    x = torch.randn(2, 3, 8, 8)
    with attnlib.capture(model) as maps:
        model(x)
    features = model[0](x)
    torch.testing.assert_close(model[1](features), features * maps["1"]["gate"])


def test_latest_call_wins_and_nothing_is_kept_after_exit():
    model = _model()
    x1, x2 = torch.randn(1, 3, 8, 8), torch.randn(3, 3, 8, 8)
    with attnlib.capture(model) as maps:
        model(x1)
        model(x2)
    assert maps["1"]["gate"].shape[0] == 3
    for module in model.modules():
        assert "_capture_sink" not in module.__dict__
    model(x1)
    assert maps["1"]["gate"].shape[0] == 3  # the closed capture did not record the call after it


def test_tensors_are_detached_unless_asked():
    model = _model()
    x = torch.randn(2, 3, 8, 8)
    with attnlib.capture(model) as maps:
        model(x)
    assert not maps["1"]["gate"].requires_grad
    with attnlib.capture(model, detach=False) as maps:
        model(x)
    gate = maps["1"]["gate"]
    assert gate.requires_grad
    gate.sum().backward()
    assert model[1].fc1.weight.grad is not None


def test_cleanup_happens_when_the_forward_raises():
    model = _model()
    with pytest.raises(ValueError):
        with attnlib.capture(model):
            model[1](torch.randn(2, 4, 8, 8))  # wrong channel count for the SE block
    assert all("_capture_sink" not in m.__dict__ for m in model.modules())


def test_nested_capture_of_the_same_block_is_refused_and_cleans_up():
    model = _model()
    with attnlib.capture(model):
        with pytest.raises(RuntimeError, match="already being captured"):
            with attnlib.capture(model[1]):
                pass
    assert all("_capture_sink" not in m.__dict__ for m in model.modules())


def test_a_refused_capture_attaches_nothing():
    # the inner block is captured first; capturing the whole model must fail without touching model[1]
    model = _model()
    with attnlib.capture(model[2]):
        with pytest.raises(RuntimeError, match="'2.1' is already being captured"):
            with attnlib.capture(model):
                pass
        assert "_capture_sink" not in model[1].__dict__
    assert all("_capture_sink" not in m.__dict__ for m in model.modules())
    with attnlib.capture(model) as maps:  # and the model can be captured again afterwards
        model(torch.randn(1, 3, 8, 8))
    assert set(maps) == {"1", "2.1"}


def test_capture_argument_checks():
    with pytest.raises(TypeError, match="nn.Module"):
        attnlib.capture("model")
    with pytest.raises(ValueError, match="query"):
        attnlib.capture(_model(), queries=[(0.5, 1.5)])


def test_state_dict_is_unchanged_by_capture():
    model = _model()
    keys = set(model.state_dict())
    with attnlib.capture(model):
        assert set(model.state_dict()) == keys
