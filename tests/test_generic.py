"""Generic tests over every registered block, driven by the case table in ``tests/cases``."""

import copy

import pytest
import torch

import attnlib
from cases import CASES

NAMES = sorted(CASES)
B = 2


def _input(case, batch=B, size=None, dtype=torch.float32, device="cpu", channels=None):
    H, W = size or case.size
    g = torch.Generator().manual_seed(0)
    return torch.randn(batch, channels or case.channels, H, W, generator=g, dtype=dtype).to(device)


def _perturbed(case, device="cpu", dtype=torch.float32, channels=None):
    """The block with every parameter moved off its initial value, so zero-initialised parts
    (identity-at-init blocks) do not hide a broken path."""
    torch.manual_seed(0)
    block = case.build(channels).to(device=device, dtype=dtype)
    with torch.no_grad():
        for p in block.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return block


def test_every_registered_block_has_a_case():
    missing = sorted(set(attnlib.list_blocks()) - set(CASES))
    assert not missing, f"registered blocks without a test case in tests/cases: {missing}"


def test_every_case_is_registered():
    unknown = sorted(set(CASES) - set(attnlib.list_blocks()))
    assert not unknown, f"test cases for unregistered blocks: {unknown}"


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_output_shape(name, train, device):
    case = CASES[name]
    block = case.build().to(device).train(train)
    x = _input(case, device=device)
    y = block(x)
    assert tuple(y.shape) == case.out_shape(*x.shape)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", NAMES)
def test_square_and_odd_sizes(name, device):
    case = CASES[name]
    block = case.build().to(device).eval()
    for size in [(8, 8), (7, 9)]:
        x = _input(case, size=size, device=device)
        assert tuple(block(x).shape) == case.out_shape(*x.shape)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter(name, device):
    case = CASES[name]
    block = _perturbed(case, device).train()
    x = _input(case, batch=4, device=device).requires_grad_()  # 4 samples: ReLU units rarely all dead
    out = block(x)
    (out * torch.randn_like(out)).sum().backward()
    missing = [n for n, p in block.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing, f"{name}: no gradient reaches {missing}"
    assert x.grad is not None and torch.any(x.grad != 0)


@pytest.mark.parametrize("name", NAMES)
def test_gradcheck_float64(name):
    case = CASES[name]
    block = _perturbed(case, dtype=torch.float64, channels=case.grad_channels).train()
    x = _input(case, size=case.grad_size, dtype=torch.float64, channels=case.grad_channels).requires_grad_()
    assert torch.autograd.gradcheck(block, (x,), fast_mode=True, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_batch_size_one_in_training(name, device):
    case = CASES[name]
    block = case.build().to(device).train()
    x = _input(case, batch=1, device=device)
    if case.batch1_train == "ok":
        y = block(x)
        assert tuple(y.shape) == case.out_shape(*x.shape)
    else:
        with pytest.raises(ValueError, match="batch"):
            block(x)
        # eval mode uses the running statistics and accepts a single sample
        assert tuple(block.eval()(x).shape) == case.out_shape(*x.shape)


@pytest.mark.parametrize("name", NAMES)
def test_channels_last_and_non_contiguous(name, device):
    case = CASES[name]
    block = _perturbed(case, device).eval()
    x = _input(case, device=device)
    ref = block(x)
    # another memory layout reorders float32 sums: allow rounding relative to the output's scale
    atol = 1e-5 * max(1.0, ref.abs().max().item())
    y_cl = block(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(y_cl, ref, rtol=1e-4, atol=atol)
    # a non-contiguous view: every other column of a wider tensor
    H, W = case.size
    wide = torch.zeros(B, case.channels, H, 2 * W, device=device)
    wide[..., ::2] = x
    view = wide[..., ::2]
    assert not view.is_contiguous()
    torch.testing.assert_close(block(view), ref, rtol=1e-4, atol=atol)


@pytest.mark.parametrize("name", NAMES)
def test_bfloat16_forward_on_cpu(name):
    case = CASES[name]
    block = _perturbed(case).eval()
    x = _input(case)
    ref = block(x)
    y = copy.deepcopy(block).to(torch.bfloat16)(x.to(torch.bfloat16))
    assert y.dtype == torch.bfloat16
    assert torch.isfinite(y).all()
    err = (y.float() - ref).abs().max() / ref.abs().max().clamp_min(1e-6)
    assert err < 0.1, f"{name}: bfloat16 output differs from float32 by {err:.3f} (relative to max)"


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip(name):
    case = CASES[name]
    block = _perturbed(case)
    block.train()(_input(case))  # move BatchNorm running statistics off their initial values
    block.eval()
    fresh = case.build().eval()
    fresh.load_state_dict(block.state_dict())
    x = _input(case)
    torch.testing.assert_close(fresh(x), block(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_in_eval(name, device):
    case = CASES[name]
    block = _perturbed(case, device).eval()
    x = _input(case, device=device)
    assert torch.equal(block(x), block(x))


@pytest.mark.parametrize("name", NAMES)
def test_capture_returns_documented_tensors(name, device):
    case = CASES[name]
    block = case.build().to(device).eval()
    x = _input(case, device=device)
    with attnlib.capture(block) as maps:
        block(x)
    expected = {k: f(*x.shape) for k, f in case.captured.items()}
    got = {k: tuple(v.shape) for k, v in maps.get("", {}).items()}
    assert got == expected
    assert set(maps) <= {""}, f"unexpected module names in capture: {set(maps)}"
    # nothing stays attached once the context exits, and nothing is recorded outside it
    assert all("_capture_sink" not in m.__dict__ for m in block.modules())
    block(x)
    assert {k: tuple(v.shape) for k, v in maps.get("", {}).items()} == expected


@pytest.mark.parametrize("name", NAMES)
def test_capture_inside_a_larger_model(name):
    case = CASES[name]
    model = torch.nn.Sequential(torch.nn.Identity(), case.build()).eval()
    x = _input(case)
    with attnlib.capture(model) as maps:
        model(x)
    assert set(maps) == ({"1"} if case.captured else set())


@pytest.mark.parametrize("name", NAMES)
def test_documentation_and_repr(name):
    case = CASES[name]
    block = case.build()
    doc = type(block).__doc__ or ""
    for section in ("Shape:", "Args:", "Example", "Captured:"):
        assert section in doc, f"{type(block).__name__} docstring lacks {section!r}"
    assert block.extra_repr(), f"{type(block).__name__} has an empty extra_repr"
    state = {k: v.clone() for k, v in block.state_dict().items()}
    with torch.no_grad():
        for p in block.parameters():
            p.add_(1.0)
    block.reset_parameters()
    for k, p in block.named_parameters():
        assert not torch.equal(p, state[k] + 1.0), f"reset_parameters left {k} unchanged"


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_shapes(name):
    case = CASES[name]
    block = case.build()
    cls = type(block).__name__
    H, W = case.size
    with pytest.raises(ValueError, match=cls):
        block(torch.randn(B, case.channels, H))  # wrong rank
    with pytest.raises(ValueError, match=cls):
        block(torch.randn(B, case.channels + 1, H, W))  # wrong channel count
    with pytest.raises(ValueError, match=cls):
        block(torch.randn(B, case.channels, 0, W))  # zero-sized spatial dimension


@pytest.mark.parametrize("name", NAMES)
def test_unknown_keyword_raises(name):
    case = CASES[name]
    with pytest.raises(TypeError, match="not_an_argument"):
        attnlib.create_block(name, case.channels, *case.args, not_an_argument=1, **case.kwargs)
