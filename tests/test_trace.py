"""Tests for attnlib.trace: the recorded steps of a real forward pass, their labels and shapes."""

import json

import pytest
import torch
from torch import nn

import attnlib
from attnlib.trace import Trace, format_shape, parse_comment, parse_symbolic, trace_block
from cases import CASES

NAMES = attnlib.list_blocks()


def _block_and_input(name, batch=2):
    case = CASES.get(name)
    torch.manual_seed(0)
    block = case.build() if case else attnlib.create_block(name, 64)
    C = case.channels if case else 64
    H, W = case.size if case else (12, 10)
    x = torch.randn(batch, C, H, W, generator=torch.Generator().manual_seed(0))
    return case, block, x


# ----------------------------------------------------------------------------- every registered block


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_trace_of_every_block(name, train):
    """Final shape equals the block's own output; steps in order; each step's output shape is the real
    shape: every leaf submodule's output (seen by an independent forward hook) and every captured
    attention tensor appears as a step output; each input taken from an earlier step has its shape."""
    case, block, x = _block_and_input(name, batch=4 if train else 2)
    block.train(train)
    hooked = []
    handles = [m.register_forward_hook(lambda m, a, out, q=q: hooked.append((q, tuple(out.shape))))
               for q, m in block.named_modules() if q and not list(m.children()) and not isinstance(m, nn.Identity)]
    with torch.no_grad():
        torch.manual_seed(1)
        expected = block(x)
    for h in handles:
        h.remove()
    state = {k: v.clone() for k, v in block.state_dict().items()}

    with attnlib.capture(block) as maps:
        t = trace_block(block, x)

    assert t.block == name
    assert t.input_shape == tuple(x.shape)
    assert t.output_shape == tuple(expected.shape)
    if case is not None:
        assert t.output_shape == case.out_shape(*x.shape)
    assert len(t.steps) > 0
    assert [s.index for s in t.steps] == list(range(len(t.steps)))
    outputs = {o for s in t.steps for o in s.outputs}
    assert t.output_shape in outputs
    by_module = {(s.module, o) for s in t.steps for o in s.outputs}
    missing = [h for h in hooked if h not in by_module]
    assert not missing, f"{name}: submodule outputs not found among the steps: {missing}"
    for key, tensor in maps.get("", {}).items():
        assert tuple(tensor.shape) in outputs | {t.input_shape}, f"{name}: captured {key!r} {tuple(tensor.shape)}"
    for s in t.steps:
        for inp in s.inputs:
            if inp.from_step is not None:
                assert inp.from_step < s.index
                assert inp.shape in t.steps[inp.from_step].outputs
        for shape, syms in zip(s.outputs, s.output_symbols):
            assert len(syms) == len(shape)
    # tracing changes nothing: same mode, same parameters and buffers (BatchNorm's running stats
    # move in training, as in any forward), no hook left behind
    assert block.training is train
    if not train:
        for k, v in block.state_dict().items():
            assert torch.equal(v, state[k]), k
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in block.modules())
    json.dumps(t.to_dict())


@pytest.mark.parametrize("name", NAMES)
def test_comment_shapes_agree_with_real_shapes(name):
    """Where a block's source comment gives a symbolic shape, the real output has that shape."""
    _, block, x = _block_and_input(name)
    t = trace_block(block.eval(), x)
    assert not t.mismatches, f"{name}: {t.mismatches}"


def test_label_statistics(capsys):
    """Reported, not enforced: how many steps of each block have no equation label."""
    rows = []
    for name in NAMES:
        _, block, x = _block_and_input(name)
        t = trace_block(block.eval(), x)
        rows.append((name, len(t), t.unlabelled))
        assert 0 <= t.unlabelled <= len(t)
    with capsys.disabled():
        total = sum(r[1] for r in rows)
        unl = sum(r[2] for r in rows)
        print(f"\n[trace] {len(rows)} blocks, {total} steps, {unl} without an equation label: "
              + ", ".join(f"{n} {u}/{k}" for n, k, u in rows if u))


# ------------------------------------------------------------------------------------------------ SE


def test_se_trace_matches_hand_computed_intermediates():
    torch.manual_seed(0)
    se = attnlib.create_block("se", 32, reduction=4)
    x = torch.randn(2, 32, 6, 5)
    t = trace_block(se, x)
    assert [s.op for s in t.steps] == ["mean", "linear", "relu", "linear", "sigmoid", "__getitem__", "mul"]
    z = x.mean(dim=(2, 3))
    h = torch.relu(se.fc1(z))
    s = torch.sigmoid(se.fc2(h))
    real = [z, se.fc1(z), h, se.fc2(h), s, s[:, :, None, None], x * s[:, :, None, None]]
    assert [st.output_shape for st in t.steps] == [tuple(r.shape) for r in real]
    squeeze, = t.find("se-squeeze")
    assert (squeeze.name, squeeze.output_shape, squeeze.symbolic) == ("squeeze", (2, 32), "(B, C)")
    assert squeeze.output_symbols == (("B", "C"),) and squeeze.symbols_from == "comment"
    assert squeeze.format_output() == "(B=2, C=32)"
    assert squeeze.inputs[0].name == "x" and squeeze.inputs[0].symbols == ("B", "C", "H", "W")
    excite = t.find("se-excite")
    assert [e.op for e in excite] == ["linear", "relu", "linear", "sigmoid", "__getitem__"]
    fc1 = excite[0]
    assert (fc1.module, fc1.module_type, fc1.op_display) == ("fc1", "Linear", "linear in fc1 (Linear)")
    assert [(i.name, i.shape, i.from_step) for i in fc1.inputs] == [
        (None, (2, 32), 0), ("fc1.weight", (8, 32), None), ("fc1.bias", (8,), None)]
    # the line's comment (B, C) belongs to its last op; the hidden (B, C_r) is not named C
    assert fc1.symbolic is None and fc1.output_symbols == (("B", None),) and fc1.symbols_from == "inferred"
    assert excite[3].symbolic == "(B, C)" and excite[3].output_symbols == (("B", "C"),)
    # the sigmoid keeps the shape, so its input (the fc2 output) is (B, C) too: named backwards
    assert excite[2].output_symbols == (("B", "C"),) and excite[2].symbols_from == "inferred"
    assert excite[3].inputs[0].symbols == ("B", "C")
    gate = t.steps[5]
    assert gate is excite[-1] and gate.symbolic == "(B, C, 1, 1)"
    assert gate.output_shape == (2, 32, 1, 1) and gate.output_symbols == (("B", "C", "1", "1"),)
    assert gate.format_output() == "(B=2, C=32, 1, 1)"
    scale, = t.find("se-scale")
    assert scale.output_shape == (2, 32, 6, 5) and scale is t.steps[-1]
    assert [i.from_step for i in scale.inputs] == [None, 5] and scale.inputs[0].name == "x"
    assert t.labels == ["se-squeeze", "se-excite", "se-scale"]
    assert t.env == {"B": 2, "C": 32, "H": 6, "W": 5, "N": 30}
    assert scale.location.endswith("attnlib/blocks/se.py:" + scale.location.rsplit(":", 1)[1])
    assert scale.source == "return x * s" and scale.function == "SqueezeExcitation.forward"


def test_se_trace_follows_the_settings():
    for C, r, H, W in [(16, 4, 8, 8), (64, 16, 3, 7), (48, 2, 5, 1)]:
        t = trace_block(attnlib.create_block("se", C, reduction=r), (3, C, H, W))
        assert t.steps[1].output_shape == (3, C // r)
        assert t.steps[0].output_shape == (3, C) and t.output_shape == (3, C, H, W)


def test_markdown_and_dict():
    t = trace_block(attnlib.create_block("se", 16, reduction=4), (2, 16, 4, 4))
    md = t.to_markdown()
    assert md.count("\n| ") == len(t) + 1  # header + one row per step
    for label in t.labels:
        assert label in md
    d = json.loads(json.dumps(t.to_dict()))
    assert d["output_shape"] == [2, 16, 4, 4] and len(d["steps"]) == len(t)
    assert d["steps"][0]["label"] == "se-squeeze" and d["unlabelled"] == t.unlabelled
    assert "7 steps" in repr(t)


# ---------------------------------------------------------------------- the machinery, on toy modules


class _Toy(nn.Module):
    """A module outside attnlib/blocks: the trace reads the comments of this test file."""

    def __init__(self, wrong=False):
        super().__init__()
        self.proj = nn.Sequential(nn.Conv2d(4, 6, 1), nn.ReLU())
        self.wrong = wrong

    def forward(self, x):
        y = self.proj(x)                                   # project, eq. toy-proj: (B, C_r, H, W)
        a, b = y.split([2, 4], dim=1)                      # split, eq. toy-split: (B, 2, H, W), (B, 4, H, W)
        outs = []
        for k in range(2):
            outs.append(a[:, k:k + 1] * 2)                 # per channel, eq. toy-loop: (B, 1, H, W)
        flat = torch.cat([o.flatten(2) for o in outs], 1)  # flatten and join, eq. toy-join: (B, 2, N)
        if self.wrong:
            return flat.mean(-1)                           # wrong comment, eq. toy-mean: (B, N)
        return flat.transpose(1, 2), b.sum(1)              # (B, N, 2), (B, H, W)


def test_toy_labels_groups_and_symbols():
    t = trace_block(_Toy(), (2, 4, 3, 5))
    ops = [(s.op, s.label, s.module) for s in t.steps]
    assert ops[:3] == [("conv2d", "toy-proj", "proj.0"), ("relu", "toy-proj", "proj.1"), ("split", "toy-split", "")]
    proj = t.find("toy-proj")
    assert proj[0].symbolic is None and proj[1].symbolic == "(B, C_r, H, W)"
    assert t.env["C_r"] == 6  # bound by the first comment that names it
    split, = t.find("toy-split")
    assert split.outputs == ((2, 2, 3, 5), (2, 4, 3, 5))
    assert split.output_symbols == (("B", "2", "H", "W"), ("B", "4", "H", "W"))
    loop = t.find("toy-loop")
    assert [s.op for s in loop] == ["__getitem__", "mul"] * 2
    # each loop iteration is its own execution of the line: both products get the comment's symbols
    assert [s.symbolic for s in loop] == [None, "(B, 1, H, W)"] * 2
    join = t.find("toy-join")
    assert [s.op for s in join] == ["flatten", "flatten", "cat"]
    # the comprehension's ops belong to the same execution of the line: only cat gets (B, 2, N)
    assert [s.symbolic for s in join] == [None, None, "(B, 2, N)"]
    assert join[-1].format_output() == "(B=2, 2, N=15)"
    last_two = t.steps[-2:]
    assert [s.op for s in last_two] == ["transpose", "sum"]
    assert [s.output_symbols for s in last_two] == [(("B", "N", "2"),), (("B", "H", "W"),)]
    assert t.unlabelled == 2 and not t.mismatches
    assert t.outputs == ((2, 15, 2), (2, 3, 5)) and t.output_shape == (2, 15, 2)


def test_wrong_comment_is_reported():
    t = trace_block(_Toy(wrong=True), (2, 4, 3, 5))
    assert t.output_shape == (2, 2)
    assert len(t.mismatches) == 1 and "axis N should be 15 but is 2" in t.mismatches[0]


def test_batchnorm_bookkeeping_is_not_a_step():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)).train()
    t = trace_block(model, (2, 3, 5, 5))
    assert [s.op for s in t.steps] == ["conv2d", "batch_norm"]
    assert model[1].num_batches_tracked.item() == 1 and model.training


def test_symbol_inference_does_not_guess_from_coincidences():
    # N' = 16 equals C = 16 by chance; the flatten output must not be called C
    class M(nn.Module):
        def forward(self, x):
            p = nn.functional.max_pool2d(x, 2)  # pool, eq. m-pool: (B, C, H', W')
            return p.flatten(2)

    t = trace_block(M(), (2, 16, 8, 8))
    assert t.steps[-1].output_symbols == (("B", "C", "H'·W'"),)
    # a merged axis is named by the axes it merges; the input's H·W is N
    t = trace_block(nn.Flatten(2), (2, 16, 8, 8))
    assert t.steps[-1].output_symbols == (("B", "C", "N"),)


def test_parse_comment_and_symbolic():
    assert parse_comment("# squeeze, eq. se-squeeze: (B, C)") == ("squeeze", "se-squeeze", "(B, C)")
    assert parse_comment("gate, eq. se-excite") == ("gate", "se-excite", None)
    assert parse_comment("eq. nl-aggregate: (B, 1, N, C_r)") == (None, "nl-aggregate", "(B, 1, N, C_r)")
    assert parse_comment("# (B, C, 1, 1)") == (None, None, "(B, C, 1, 1)")
    assert parse_comment("# mask logits: (B, 1, N)") == ("mask logits", None, "(B, 1, N)")
    assert parse_comment("# noqa: E501") == (None, None, None)
    assert parse_comment(None) == (None, None, None)
    assert parse_symbolic("(B, C, H + W, 1)") == [["B", "C", "H + W", "1"]]
    assert parse_symbolic("(B, f(C, 2)), (B,)") == [["B", "f(C, 2)"], ["B"]]
    assert parse_symbolic(None) == []
    assert format_shape((7,), ("K",)) == "(K=7,)"
    assert format_shape((2, 3), None) == "(2, 3)"


def test_bad_arguments():
    se = attnlib.create_block("se", 8, reduction=2)
    with pytest.raises(TypeError, match="nn.Module"):
        trace_block(lambda x: x, (1, 8, 2, 2))
    with pytest.raises(TypeError, match="shape tuple"):
        trace_block(se, "2x8x4x4")
    with pytest.raises(TypeError, match="shape tuple"):
        trace_block(se, (2, 8.0, 4, 4))
    with pytest.raises(ValueError, match="8 channels"):
        trace_block(se, (2, 5, 4, 4))
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in se.modules())
    # after a failed trace nothing is left in torch function mode: plain ops run untraced
    assert torch.ones(2).sum().item() == 2.0
    assert isinstance(trace_block(se, torch.randn(1, 8, 2, 2)), Trace)


def test_shape_input_equals_tensor_input():
    se = attnlib.create_block("se", 8, reduction=2)
    a = trace_block(se, (2, 8, 4, 3))
    b = trace_block(se, torch.randn(2, 8, 4, 3))
    assert a.to_dict() == b.to_dict()
