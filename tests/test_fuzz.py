"""A seeded property-based test over every registered block: constructor arguments and inputs are drawn
from plausible and hostile values, and every outcome must be a correct output or a ``ValueError`` /
``TypeError`` whose message names an argument that was given or the block.

Seeded (``derandomize=True``): every run draws the same examples, so a failure reproduces. The whole
module takes seconds (``EXAMPLES`` examples per block)."""

import inspect

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import attnlib
from attnlib.validation import MAX_SIZE

NAMES = attnlib.list_blocks()
EXAMPLES = 40

# values that probe the edges: enormous, tiny, non-finite, of the wrong type
HOSTILE = st.one_of(
    st.integers(-3, 20),
    st.sampled_from([10**400, -(10**400), 2**63, MAX_SIZE + 1, 1e-320, 1e-40, 1e30, 1.6, 0.5, 0.0, -1.0]),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
    st.lists(st.integers(0, 3), max_size=2),
    st.just(object()),
)

# plausible values by argument name (the paper's and the options' values), so that the valid paths run too
PLAUSIBLE = {
    "channels": [1, 2, 3, 4, 8, 16, 32, 64],
    "in_channels": [1, 2, 4, 8, 16, 32, 64],
    "out_channels": [None, 1, 4, 8, 16, 32, 64],
    "kernel_size": [1, 3, 5, 7],
    "stride": [1, 2, 3],
    "padding": [None, 0, 1, 2],
    "dilation": [1, 2],
    "groups": [1, 2, 4, 32],
    "bias": [True, False],
    "reduction": [1, 2, 4, 16, 1.6, 0.5],
    "min_width": [1, 8, 32],
    "min_reduced_channels": [1, 8],
    "num_kernels": [1, 2, 4],
    "num_codes": [1, 4, 16],
    "num_branches": [2, 3],
    "temperature": [1e-3, 1.0, 30.0],
    "gamma": [2, 1.5, 3],
    "b": [1, 0, -1, 2.5],
    "mode": ["embedded_gaussian", "gaussian", "dot_product", "concatenation"],
    "implementation": ["fast", "explicit"],
    "dimension": [1, 2, 3],
    "pooling": ["attention", "avg"],
    "fusion": [("add",), ("mul",), ("add", "mul"), ["mul", "add"], "add"],
    "pool": ["avg", "max"],
    "combine": ["add", "max"],
    "pool_order": ["avg_max", "max_avg"],
    "mlp_ratio": [4.0, 0.5, 1],
    "layer_scale_init": [1e-5, 1.0],
    "mixer_kernel_size": [1, 3],
    "bn_momentum": [0.1, 0.05, 0.01, 0.0, 1.0],
    "reduced_channels": [None, 1, 5],
}


def _parameters(name):
    params = list(inspect.signature(attnlib.block_info(name).cls.__init__).parameters.values())[1:]
    return params[0].name, [p for p in params[1:] if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _value(arg: str, default):
    choices = PLAUSIBLE.get(arg)
    if choices is None:  # a new argument: its default, a flipped bool, or something hostile
        choices = [default, not default] if isinstance(default, bool) else [default]
    plausible = st.sampled_from(choices)
    # 4 in 5 draws plausible, 1 in 5 hostile
    return st.integers(0, 4).flatmap(lambda i: plausible if i else HOSTILE)


@st.composite
def configurations(draw, name):
    first, params = _parameters(name)
    channels = draw(_value(first, None))
    kwargs = {}
    for p in params:
        if draw(st.integers(0, 2)) == 0:  # each argument given one time in three
            kwargs[p.name] = draw(_value(p.name, p.default))
    if draw(st.integers(0, 30)) == 0:
        kwargs["not_an_argument"] = 1
    # the input
    batch = draw(st.integers(1, 3))
    size = draw(st.lists(st.integers(1, 7), min_size=3, max_size=3))
    wrong_channels = draw(st.integers(0, 15)) == 0
    wrong_rank = draw(st.integers(0, 15)) == 0
    dtype = draw(st.sampled_from([torch.float32] * 6 + [torch.float64, torch.int64, torch.bfloat16]))
    block_dtype = draw(st.sampled_from([torch.float32] * 3 + [torch.float64, torch.bfloat16]))
    train = draw(st.booleans())
    return channels, kwargs, dict(batch=batch, size=size, wrong_channels=wrong_channels, wrong_rank=wrong_rank,
                                  dtype=dtype, block_dtype=block_dtype, train=train)


def _expected_shape(block, x):
    if attnlib.block_info(block.registry_name).cls.__name__ == "Encoding":
        return (x.shape[0], block.num_codes, block.channels)
    if hasattr(block, "out_channels") and hasattr(block, "stride"):
        span = block.dilation * (block.kernel_size - 1) + 1 if hasattr(block, "padding") else 1
        pad = block.padding if hasattr(block, "padding") else 0  # SK keeps the size ("same" padding)
        side = [(n + 2 * pad - span) // block.stride + 1 for n in x.shape[2:]]
        return (x.shape[0], block.out_channels, *side)
    return tuple(x.shape)


def _names(name, first, kwargs):
    cls = attnlib.block_info(name).cls.__name__
    return [name, cls, first, *kwargs]


@pytest.mark.parametrize("name", NAMES)
def test_every_outcome_is_an_output_or_an_error_that_names_its_cause(name):
    first, _ = _parameters(name)
    cls = attnlib.block_info(name).cls.__name__

    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(configurations(name))
    def check(config):
        channels, kwargs, inp = config
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                block = attnlib.create_block(name, channels, **kwargs)
        except (ValueError, TypeError) as exc:
            msg = str(exc)
            assert any(n in msg for n in _names(name, first, kwargs)), f"construction error names no cause: {msg}"
            return
        block = block.to(inp["block_dtype"]).train(inp["train"])
        C = getattr(block, "in_channels", getattr(block, "channels", None))
        rank = block.input_ndim[0]
        if inp["wrong_rank"]:
            rank = 4 if rank != 4 else 3
        shape = (inp["batch"], C + inp["wrong_channels"], *inp["size"][: rank - 2])
        g = torch.Generator().manual_seed(0)
        x = torch.randn(shape, generator=g).to(inp["dtype"]) if inp["dtype"] != torch.int64 else \
            torch.randint(-3, 3, shape, generator=g)
        try:
            y = block(x)
        except (ValueError, TypeError) as exc:
            assert cls in str(exc), f"forward error does not name the block: {exc}"
            return
        assert isinstance(y, torch.Tensor)
        assert y.dtype == x.dtype == inp["block_dtype"] or torch.is_autocast_enabled("cpu")
        assert tuple(y.shape) == _expected_shape(block, x), (kwargs, tuple(x.shape), tuple(y.shape))
        assert not (inp["wrong_channels"] or inp["wrong_rank"]), "a wrong input was accepted"

    check()
