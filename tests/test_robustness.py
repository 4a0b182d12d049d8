"""attnlib under hostile use: capture that never leaks or races, numbers at the edge, inputs of the wrong
kind, steppers that keep their page, and the official-code options (issue 10)."""

import copy
import io
import pickle
import threading

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import attnlib
from attnlib.validation import MAX_SIZE, MIN_TEMPERATURE
from cases import CASES

NAMES = sorted(CASES)


def _sinks(model):
    return [m for m in model.modules() if "_capture_sink" in m.__dict__]


def _model():
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), attnlib.create_block("se", 16, reduction=4),
                         attnlib.create_block("nonlocal", 16)).eval()


# ------------------------------------------------------------------------------------------- 1. capture
def test_a_deep_copy_made_inside_capture_records_nothing_and_can_be_captured():
    model = _model()
    x = torch.randn(2, 3, 8, 8)
    with attnlib.capture(model) as maps:
        twin = copy.deepcopy(model)
        assert not _sinks(twin)
        twin(x)
        assert maps == {}  # the copy's forward did not reach the open capture
        with attnlib.capture(twin) as twin_maps:  # not "already being captured"
            twin(x)
        assert set(twin_maps) == {"1", "2"}
        model(x)
    assert set(maps) == {"1", "2"}
    assert not _sinks(model) and not _sinks(twin)


@pytest.mark.parametrize("how", ["torch.save", "pickle"])
def test_a_model_saved_inside_capture_holds_no_sink(how):
    model = _model()
    with attnlib.capture(model) as maps:
        buf = io.BytesIO()
        if how == "torch.save":
            torch.save(model, buf)
        else:
            pickle.dump(model, buf)
        data = buf.getvalue()
    assert b"CaptureSink" not in data and b"_capture_sink" not in data
    loaded = torch.load(io.BytesIO(data), weights_only=False) if how == "torch.save" else pickle.loads(data)
    assert not _sinks(loaded)
    loaded(torch.randn(1, 3, 8, 8))
    assert maps == {}
    with attnlib.capture(loaded) as again:
        loaded(torch.randn(1, 3, 8, 8))
    assert set(again) == {"1", "2"}


def _run_threads(targets):
    errors = []

    def wrap(fn):
        def run():
            try:
                fn()
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)
        return run

    threads = [threading.Thread(target=wrap(fn)) for fn in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a capture thread hung"
    if errors:
        raise errors[0]


@pytest.mark.parametrize("same_model", [True, False], ids=["same-model", "different-models"])
def test_two_threads_capturing_at_once_each_keep_their_own_maps(same_model):
    shared = _model()
    models = [shared, shared] if same_model else [_model(), _model()]
    both_inside = threading.Barrier(2, timeout=30)
    results = {}

    def worker(i):
        def run():
            model, batch = models[i], 2 + i  # thread 0 runs batch 2, thread 1 batch 3
            with attnlib.capture(model) as maps:
                both_inside.wait()  # both captures are open now
                for _ in range(20):
                    model(torch.randn(batch, 3, 8, 8))
                    assert maps["1"]["gate"].shape[0] == batch
                both_inside.wait()  # neither leaves before the other has run
            results[i] = maps
        return run

    _run_threads([worker(0), worker(1)])
    for i in (0, 1):
        assert set(results[i]) == {"1", "2"}
        assert results[i]["1"]["gate"].shape[0] == 2 + i
        assert results[i]["2"]["attention"].shape[0] == 2 + i
    assert not any(_sinks(m) for m in models)


def test_many_threads_entering_and_leaving_never_leave_a_sink_or_lose_a_map():
    model = _model()
    start = threading.Barrier(8, timeout=30)
    failures = []

    def run():
        start.wait()
        for _ in range(15):
            with attnlib.capture(model) as maps:
                model(torch.randn(1, 3, 4, 4))
            if set(maps) != {"1", "2"}:
                failures.append(set(maps))

    _run_threads([run] * 8)
    assert not failures
    assert not _sinks(model)


def test_a_thread_does_not_record_into_another_threads_capture():
    model = _model()
    opened, ran = threading.Event(), threading.Event()
    box = {}

    def capturer():
        with attnlib.capture(model) as maps:
            opened.set()
            assert ran.wait(30)
        box["maps"] = maps

    def runner():
        assert opened.wait(30)
        model(torch.randn(2, 3, 8, 8))  # not captured: this thread opened no capture
        ran.set()

    _run_threads([capturer, runner])
    assert box["maps"] == {}


@pytest.mark.parametrize("queries", [(0.5, 0.5), 0.5, "ab", ["ab"], [("a", "b")], [(0.5,)], [], [(0.5, float("nan"))],
                                     [(True, 0.5)]])
def test_malformed_queries_name_the_argument_and_the_form(queries):
    with pytest.raises(ValueError, match=r"quer.*\(row, col\)"):
        attnlib.capture(_model(), queries=queries)


@pytest.mark.parametrize("detach", ["yes", 1, None])
def test_detach_must_be_a_bool(detach):
    with pytest.raises(ValueError, match="detach must be True or False"):
        attnlib.capture(_model(), detach=detach)


# ------------------------------------------------------------------------------ 2. numbers at the edge
HUGE, TINY = 10**400, 1e-320
EDGE = [
    ("se", (16,), {"reduction": HUGE}, "reduction"),
    ("se", (16,), {"reduction": TINY}, "reduction"),
    ("se", (HUGE,), {}, "channels"),
    ("se", (MAX_SIZE + 1,), {}, "channels"),
    ("cse", (16,), {"reduction": 1e-30}, "reduction"),
    ("eca", (16,), {"gamma": TINY}, "gamma"),
    ("eca", (16,), {"b": HUGE}, "b"),
    ("eca", (16,), {"b": 1e30}, "gamma"),
    ("gc", (16,), {"reduction": TINY}, "reduction"),
    ("coord", (16,), {"min_reduced_channels": HUGE}, "min_reduced_channels"),
    ("sk", (32,), {"min_width": HUGE}, "min_width"),
    ("sk", (32,), {"num_branches": HUGE}, "num_branches"),
    ("nonlocal", (16,), {"reduction": TINY}, "reduction"),
    ("encoding", (16,), {"num_codes": HUGE}, "num_codes"),
    ("dynamic_conv", (16, 16, HUGE), {}, "kernel_size"),
    ("dynamic_conv", (16,), {"temperature": HUGE}, "temperature"),
    ("dynamic_conv", (16,), {"temperature": TINY}, "temperature"),
    ("dynamic_conv", (16,), {"num_kernels": HUGE}, "num_kernels"),
    ("dynamic_conv", (16,), {"padding": HUGE}, "padding"),
    ("dka", (16,), {"dilation": HUGE}, "dilation"),
    ("dycaconv", (16,), {"stride": HUGE}, "stride"),
    ("evc", (16,), {"mlp_ratio": HUGE}, "mlp_ratio"),
    ("evc", (16,), {"mlp_ratio": 1e30}, "mlp_ratio"),
    ("evc", (16,), {"layer_scale_init": TINY}, "layer_scale_init"),
    ("evc", (16,), {"layer_scale_init": HUGE}, "layer_scale_init"),
]


@pytest.mark.parametrize("name,args,kwargs,argument", EDGE, ids=[f"{e[0]}-{e[3]}-{i}" for i, e in enumerate(EDGE)])
def test_enormous_and_tiny_numbers_name_the_argument_and_its_range(name, args, kwargs, argument):
    with pytest.raises(ValueError, match=argument) as info:
        attnlib.create_block(name, *args, **kwargs)
    assert any(word in str(info.value) for word in ("<=", ">=", "in [", "limit", "must be"))


def test_sizes_that_pass_their_bounds_but_cannot_be_allocated_name_the_block():
    with pytest.raises(ValueError, match=r"DynamicConv2d\(.*cannot be allocated"):
        attnlib.create_block("dynamic_conv", MAX_SIZE, MAX_SIZE, 255, num_kernels=MAX_SIZE)


def test_temperature_below_the_documented_bound_is_refused():
    for t in (1e-40, MIN_TEMPERATURE / 2):
        with pytest.raises(ValueError, match="temperature"):
            attnlib.create_block("dynamic_conv", 16, temperature=t)
        with pytest.raises(ValueError, match="temperature"):
            attnlib.create_block("dynamic_conv", 16).set_temperature(t)
    assert "1e-3" in type(attnlib.create_block("dynamic_conv", 16)).__doc__


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_the_smallest_temperature_gives_finite_attention_in_every_dtype(dtype):
    torch.manual_seed(0)
    block = attnlib.create_block("dynamic_conv", 8, temperature=MIN_TEMPERATURE).to(dtype)
    with torch.no_grad():
        block.fc2.bias.copy_(torch.tensor([100.0, 0.0, -50.0, 99.0]))  # logits / tau overflow float16
    x = torch.randn(2, 8, 5, 5, dtype=dtype)
    with attnlib.capture(block) as maps:
        y = block(x)
    pi = maps[""]["attention"]
    assert torch.isfinite(pi).all() and torch.isfinite(y).all()
    torch.testing.assert_close(pi.float().sum(1), torch.ones(2), atol=1e-2, rtol=0)
    assert (pi[:, 0] > 0.99).all()  # the largest logit takes (almost) everything


def test_fractional_reduction_is_the_exact_floor():
    # 16 / 1.6 is 10; binary floating point gives 16 // 1.6 == 9.0
    assert attnlib.create_block("se", 16, reduction=1.6).reduced_channels == 10
    assert attnlib.create_block("cbam", 30, reduction=0.3).channel.reduced_channels == 100
    assert attnlib.create_block("gc", 7, reduction=0.7).reduced_channels == 10
    assert attnlib.create_block("se", 16, reduction=1.7).reduced_channels == 9


@pytest.mark.parametrize("dimension", [2.0, True, "2", None])
def test_nonlocal_dimension_must_be_an_int(dimension):
    with pytest.raises(ValueError, match="dimension"):
        attnlib.create_block("nonlocal", 16, dimension=dimension)


# ---------------------------------------------------------------------------- 3. inputs of the wrong kind
def _block_and_input(name, dtype=torch.float32):
    case = CASES[name]
    block = case.build().eval().to(dtype)
    H, W = case.size
    return block, torch.randn(2, case.channels, H, W, dtype=dtype)


@pytest.mark.parametrize("name", NAMES)
def test_an_input_of_another_dtype_names_both_dtypes(name):
    block, x = _block_and_input(name)
    with pytest.raises(ValueError, match=rf"{type(block).__name__}.*torch.float32.*torch.float64"):
        block(x.double())


@pytest.mark.parametrize("name", ["se", "cbam", "gc", "nonlocal", "dynamic_conv", "eca"])
def test_autocast_inputs_still_pass(name):
    block, x = _block_and_input(name)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = block(x.to(torch.bfloat16))
    assert torch.isfinite(y.float()).all()


@pytest.mark.parametrize("name", NAMES)
def test_sparse_and_meta_inputs_get_a_clear_message(name):
    block, x = _block_and_input(name)
    cls = type(block).__name__
    with pytest.raises(ValueError, match=rf"{cls} expects a dense"):
        block(x.to_sparse())
    with pytest.raises(ValueError, match=rf"{cls} has its parameters on cpu but the input is on meta"):
        block(x.to("meta"))


BATCH_NORM_ONE = [
    ("lvc", (16,), {}, "LVC"),
    ("evc", (16,), {}, "EVC"),
    ("dycaconv", (16,), {}, "DyCAConv"),
    ("nonlocal", (16,), {"sub_sample": False}, "NonLocal"),
]


@pytest.mark.parametrize("name,args,kwargs,cls", BATCH_NORM_ONE, ids=[b[0] for b in BATCH_NORM_ONE])
def test_one_1x1_sample_in_training_raises_the_blocks_own_error(name, args, kwargs, cls):
    block = attnlib.create_block(name, *args, **kwargs).train()
    x = torch.randn(1, 16, 1, 1)
    with pytest.raises(ValueError, match=rf"{cls}: .*training mode.*BatchNorm.*\(1, 16, 1, 1\)"):
        block(x)
    assert "1x1" in type(block).__doc__ or "single position" in type(block).__doc__
    assert block.eval()(x).shape[0] == 1  # eval mode uses the running statistics
    block.train()(torch.randn(2, 16, 1, 1))  # two samples are enough


@pytest.mark.parametrize("name,cls", [("dynamic_conv", "DynamicConv2d"), ("dka", "DynamicKernelAggregation"),
                                      ("dycaconv", "DyCAConv")])
def test_an_input_smaller_than_the_kernel_raises_the_blocks_own_error(name, cls):
    block = attnlib.create_block(name, 8, 8, 5, padding=0).eval()
    with pytest.raises(ValueError, match=rf"{cls}: the input \(2, 8, 3, 4\) is smaller than the kernel.*at least 5"):
        block(torch.randn(2, 8, 3, 4))
    assert block(torch.randn(2, 8, 5, 5)).shape == (2, 8, 1, 1)
    dilated = attnlib.create_block(name, 8, 8, 3, padding=1, dilation=3).eval()  # span 7, padding 2
    with pytest.raises(ValueError, match="at least 5"):
        dilated(torch.randn(2, 8, 4, 9))
    assert "smaller than the dilated kernel" in type(block).__doc__


@pytest.mark.parametrize("name", ["lvc", "evc"])
def test_lvc_and_evc_name_channels_and_its_minimum(name):
    for c in (1, 3):
        with pytest.raises(ValueError, match=r"channels must be an integer >= 4") as info:
            attnlib.create_block(name, c)
        assert "reduction" not in str(info.value)
    attnlib.create_block(name, 4)


@pytest.mark.parametrize("bad", [["se"], {"se": 1}, 3, None])
def test_a_block_name_that_is_not_a_string_gets_the_registrys_error(bad):
    for call in (lambda: attnlib.create_block(bad, 16), lambda: attnlib.block_info(bad)):
        with pytest.raises(ValueError, match="block name must be a string.*se"):
            call()


# ------------------------------------------------------------------------------------------ 5. steppers
def test_static_stepper_shows_enormous_and_malformed_values_as_invalid_settings():
    page = attnlib.static_stepper("se", {"C": [16, 10**400], "reduction": [4, 10**400, 1e-320, "x"]},
                                  fixed={"H": 4, "W": 4})
    assert len(page.errors) == 7  # only C=16, reduction=4 builds
    assert page.errors["C=16, reduction=1e-320"].startswith("ValueError: reduction must be")
    assert "an integer of 401 digits" in page.errors["C=16, reduction=an integer of 401 digits"]
    assert page.errors["C=an integer of 401 digits, reduction=4"].startswith("ValueError: C must be an integer")
    assert "an integer of 401 digits" in page.html


def test_static_stepper_refuses_inputs_too_large_to_trace_as_a_setting():
    page = attnlib.static_stepper("se", {"H": [4, 10**6]}, fixed={"C": 16, "W": 4})
    assert list(page.errors) == ["H=1000000"] and "at most" in page.errors["H=1000000"]


def test_live_stepper_shows_an_enormous_value_instead_of_crashing():
    box = attnlib.live_stepper("se", C=16, H=4, W=4, reduction=[4, 10**400, 1e-320])
    st = box.stepper
    for bad in (10**400, 1e-320):
        st.controls["reduction"].value = bad
        assert st.trace is None and st.error.startswith("ValueError: reduction must be")
        assert "cannot be built" in st.view.value
    st.controls["reduction"].value = 4
    assert st.error is None and st.trace.output_shape == (2, 16, 4, 4)


# ------------------------------------------------------------------------------- 6. official-code options
def test_sk_bn_momentum_is_used_by_every_batchnorm():
    torch.manual_seed(0)
    sk = attnlib.create_block("sk", 32, bn_momentum=0.05).train()
    bns = [m for m in sk.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert len(bns) == 3 and all(bn.momentum == 0.05 for bn in bns)
    assert all(m.momentum == 0.1 for m in attnlib.create_block("sk", 32).modules()
               if isinstance(m, nn.modules.batchnorm._BatchNorm))  # default: PyTorch's
    x = torch.randn(4, 32, 6, 6)
    conv_out = sk.branches[0][0](x).detach()
    sk(x)
    torch.testing.assert_close(sk.branches[0][1].running_mean, 0.05 * conv_out.mean(dim=(0, 2, 3)))
    assert "bn_momentum=0.05" in repr(sk)
    with pytest.raises(ValueError, match="bn_momentum"):
        attnlib.create_block("sk", 32, bn_momentum=0.95 + 1)


def test_cbam_spatial_bn_momentum_as_in_the_official_code():
    torch.manual_seed(0)
    cbam = attnlib.create_block("cbam", 16, batch_norm=True, bn_momentum=0.01).train()
    assert cbam.spatial.bn.momentum == 0.01
    assert attnlib.create_block("cbam_spatial", 16, batch_norm=True).bn.momentum == 0.1
    x = torch.randn(2, 16, 5, 5)
    f = x * cbam.channel.gate(x)
    pooled = torch.cat([f.mean(1, keepdim=True), f.amax(1, keepdim=True)], dim=1)
    conv_out = cbam.spatial.conv(pooled).detach()
    cbam(x)
    torch.testing.assert_close(cbam.spatial.bn.running_mean, 0.01 * conv_out.mean().reshape(1))
    with pytest.raises(ValueError, match="bn_momentum=0.01 needs batch_norm=True"):
        attnlib.create_block("cbam", 16, bn_momentum=0.01)
    with pytest.raises(ValueError, match="bn_momentum"):
        attnlib.create_block("cbam", 16, batch_norm=True, bn_momentum=-0.1)


def test_dynamic_conv_reference_code_attention_matches_an_independent_formulation():
    torch.manual_seed(0)
    C, C_out, k, tau = 18, 12, 3, 7.0
    block = attnlib.create_block("dynamic_conv", C, C_out, k, attention_bias=False,
                                 reduced_channels=int(C * 0.25) + 1, temperature=tau).eval()
    assert block.fc1.bias is None and block.fc1.weight.shape == (5, C) and block.fc2.bias is not None
    assert "attention_bias=False" in repr(block)
    default = attnlib.create_block("dynamic_conv", C, C_out, k)
    assert default.fc1.bias is not None and default.reduced_channels == C // 4  # unchanged default
    x = torch.randn(3, C, 7, 6)
    expected = []
    for xb in x:  # one sample at a time, the equations written out
        z = xb.mean(dim=(1, 2))
        h = torch.relu(block.fc1.weight @ z)  # no first-layer bias
        pi = torch.softmax((block.fc2.weight @ h + block.fc2.bias) / tau, dim=0)
        w = torch.einsum("k,koihw->oihw", pi, block.weight)
        b = pi @ block.bias
        expected.append(F.conv2d(xb[None], w, b, padding=1)[0])
    torch.testing.assert_close(block(x), torch.stack(expected), rtol=1e-5, atol=1e-5)
    small = attnlib.create_block("dynamic_conv", 3, 8, 3, reduced_channels=1)  # reference width for C = 3
    assert small.reduced_channels == 1


def test_encoding_stays_accurate_far_from_the_origin():
    torch.manual_seed(0)
    enc = attnlib.create_block("encoding", 64, num_codes=32)
    with torch.no_grad():
        enc.codewords.add_(100.0)
    x = torch.randn(2, 64, 14, 14) * 0.5 + 100.0
    ref = copy.deepcopy(enc).double()(x.double())
    out = enc(x)
    assert ref.abs().max() > 5
    err = (out.double() - ref).abs().max().item()
    assert err < 1e-4, f"float32 error {err:.2e} against float64"


def test_eca_docstring_says_who_computes_k():
    doc = " ".join(attnlib.blocks.eca.__doc__.split())  # line breaks do not matter
    assert "official code never computes k" in doc and "paper" in doc
    assert "like the official code" not in doc
