"""The ONNX graphs of the live pages (attnlib.zoo.onnx_export) against torch, in onnxruntime.

For every zoo model (seed 0, variants included): on 200 held-out test scenes, at the scenes' own size
(64 × 64) and upsampled to 96 × 96 (a dynamic size that a silently wrong graph fails: the exporter turns
``AdaptiveAvgPool2d((None, 1))`` into a fixed-kernel pool), the logits are within 1e-3 of torch's and the
predicted class agrees on at least 99 % of the scenes; every map output agrees with torch's capture within 5e-3 (attention weights in [0, 1]), and
at 64 × 64 with the maps the book scores (attnlib.zoo.scores.attention_maps). Graphs come from the
export cache (``$ATTNLIB_CACHE``, filled by ``make book``); a missing one is exported here.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from attnlib.zoo import checkpoint, onnx_export, pipeline, scores  # noqa: E402

N_SCENES = 200
SIZES = (64, 96)
LOGIT_TOL = 1e-3
MAP_TOL = 5e-3  # attention probabilities; a sharp softmax (Non-local at 6×6) amplifies float32 rounding to ~2e-3
MODELS = onnx_export.models()


@pytest.fixture(scope="module")
def test_scenes():
    data = pipeline.test_set(N_SCENES)
    img = torch.as_tensor(data.images).permute(0, 3, 1, 2).float() / 255  # (n, 3, 64, 64) in [0, 1]
    return data, img


def _resize(img: torch.Tensor, size: int) -> torch.Tensor:
    if img.shape[-1] == size:
        return img
    return torch.nn.functional.interpolate(img, size=(size, size), mode="bilinear", align_corners=False)


def test_every_zoo_model_is_exported_and_the_total_fits():
    assert "baseline" in MODELS and "nonlocal" in MODELS and "gc" in MODELS
    assert "encoding+positive_s" in MODELS and "lvc+positive_s" in MODELS
    total = sum(onnx_export.cached_graph(n).stat().st_size for n in MODELS)
    assert total <= 40e6, f"the graphs take {total / 1e6:.1f} MB, more than 40 MB"


@pytest.mark.parametrize("name", MODELS)
def test_graph_matches_torch_at_two_sizes(name, test_scenes):
    data, img = test_scenes
    session = ort.InferenceSession(str(onnx_export.cached_graph(name)), providers=["CPUExecutionProvider"])
    outputs = [o.name for o in session.get_outputs()]
    model = checkpoint.load_model(name)
    live = onnx_export.LiveNet(model).eval()
    assert outputs == live.output_names
    for size in SIZES:
        x = _resize(img, size)
        with torch.no_grad():
            ref = live._outputs(x)  # batch of n: the same computation as the graph's batch 1, per scene
            ref_logits = model(onnx_export.standardise(x))
        torch.testing.assert_close(ref["logits"], ref_logits)
        got = {k: [] for k in outputs}
        for i in range(len(x)):
            for k, v in zip(outputs, session.run(None, {"image": x[i:i + 1].numpy()})):
                got[k].append(v)
        logits = np.concatenate(got["logits"])
        err = np.abs(logits - ref_logits.numpy()).max()
        agree = (logits.argmax(1) == ref_logits.numpy().argmax(1)).mean()
        assert err <= LOGIT_TOL, f"{name} at {size}x{size}: logits differ from torch by {err:.2e}"
        assert agree >= 0.99, f"{name} at {size}x{size}: same class on only {100 * agree:.1f} % of scenes"
        for k in outputs[1:]:
            a = np.concatenate(got[k])
            assert a.shape == tuple(ref[k].shape), f"{name} {k} at {size}: shape {a.shape} vs {tuple(ref[k].shape)}"
            e = np.abs(a - ref[k].numpy()).max()
            assert e <= MAP_TOL, f"{name} at {size}x{size}: output {k} differs from torch by {e:.2e}"
        if size == 64 and model.block is not None:
            # the exported maps are the ones the book scores
            book = scores.attention_maps(model, data)
            for stage, m in book["spatial"].items():
                if f"rows{stage}" in got:  # Non-local: the row of each scene's query (its mask point)
                    rows = np.concatenate(got[f"rows{stage}"])  # (n, N, h, w)
                    h, w = rows.shape[2:]
                    q = [min(int(r * h), h - 1) * w + min(int(c * w), w - 1) for r, c in scores.mask_points(data.masks)]
                    mine = rows[np.arange(len(q)), q]
                else:
                    mine = np.concatenate(got[f"map{stage}"])
                np.testing.assert_allclose(mine, m.numpy(), atol=MAP_TOL, err_msg=f"{name} stage {stage}")
            for stage, g in book["gates"].items():
                np.testing.assert_allclose(np.concatenate(got[f"gate{stage}"]), g.numpy(), atol=MAP_TOL,
                                           err_msg=f"{name} gate at stage {stage}")


def test_nonlocal_rows_and_gc_map_are_exported():
    outs = {n: [o.name for o in ort.InferenceSession(str(onnx_export.cached_graph(n))).get_outputs()]
            for n in ("nonlocal", "gc")}
    assert outs["nonlocal"] == ["logits", "rows1", "rows2", "rows3"]
    assert outs["gc"][:2] == ["logits", "map1"] and "map3" in outs["gc"]


def test_cache_key_follows_the_weights_and_the_exporter(tmp_path, monkeypatch):
    key = onnx_export.cache_key("se")
    assert key == onnx_export.cache_key("se") and key != onnx_export.cache_key("eca")
    card = checkpoint.read_card("se")
    (tmp_path / "se.json").write_text(json.dumps({**card, "weights_sha256": "0" * 64}))
    assert onnx_export.cache_key("se", tmp_path) != key
    monkeypatch.setattr(onnx_export, "_source_digest", lambda: "another exporter")
    assert onnx_export.cache_key("se") != key


def test_cache_key_follows_the_model_and_block_sources(monkeypatch):
    """A fixed block or a changed map extraction changes the graph with the same weights: the key follows."""
    names = {f.name for f in onnx_export._graph_sources()}
    assert {"onnx_export.py", "model.py", "scores.py", "capture.py", "se.py", "non_local.py"} <= names
    key = onnx_export.cache_key("se")
    real = onnx_export._graph_sources()
    fake = [f.with_name("base.py") if f.name == "se.py" else f for f in real]  # se.py's text changed
    monkeypatch.setattr(onnx_export, "_graph_sources", lambda: fake)
    assert onnx_export.cache_key("se") != key


def test_page_reads_the_card_not_a_stale_cached_entry(tmp_path, monkeypatch):
    """The headline stage and Encoding's codeword come from the card at export_all time, also for a graph
    copied from the cache (the cache key holds the weights, not the card's scores)."""
    onnx_export.cached_graph("encoding")  # cached
    card = checkpoint.read_card("encoding")
    real = checkpoint.read_card
    changed = json.loads(json.dumps(card))
    stage = str(changed["scores"]["headline_stage"])
    changed["scores"]["map"][stage]["map_chosen_on_validation"] = 1 + card["scores"]["map"][stage][
        "map_chosen_on_validation"]
    monkeypatch.setattr(checkpoint, "read_card",
                        lambda name, directory=None: changed if name == "encoding" else real(name, directory))
    manifest = onnx_export.export_all(tmp_path, ["encoding"])
    assert manifest["models"]["encoding"]["codeword"] == changed["scores"]["map"][stage]["map_chosen_on_validation"]


def test_the_graph_standardises_as_training_did(test_scenes):
    """The page feeds pixels / 255; the graph's standardisation is the training pipeline's
    (attnlib.zoo.scenes.normalise: per image and channel, unbiased std)."""
    from attnlib.zoo import scenes

    data, img = test_scenes
    torch.testing.assert_close(onnx_export.standardise(img[:16]), scenes.normalise(data.images[:16]))


def test_export_all_writes_a_manifest_from_the_cache(tmp_path):
    manifest = onnx_export.export_all(tmp_path, ["gc", "encoding"])
    assert set(manifest["models"]) == {"gc", "encoding"}
    assert (tmp_path / "gc.onnx").stat().st_size == manifest["models"]["gc"]["bytes"]
    assert manifest["models"]["encoding"]["codeword"] == checkpoint.read_card("encoding")["scores"]["map"]["3"][
        "map_chosen_on_validation"]
    assert json.loads((tmp_path / "manifest.json").read_text()) == manifest


def test_whole_axis_pools_need_the_swap(tmp_path, monkeypatch, test_scenes):
    """Without the swap of whole-axis pools (DyCAConv's AdaptiveAvgPool2d((None, 1))), a graph with free H
    and W is not right at every size: torch 2.13's exporter refuses it, and where an exporter accepts it
    the pool's kernel is the traced width (shared/reference/site.md), which the check at 96 × 96 sees.
    Either way the swap is what makes DyCAConv's graph right at both sizes (test above)."""
    monkeypatch.setattr(onnx_export, "_swap_axis_pools", lambda model: 0)
    path = tmp_path / "dycaconv.onnx"
    try:
        onnx_export.export_model("dycaconv", path, fp16=False)
    except Exception as e:  # the exporter refuses the graph: the pitfall surfaces as an error
        assert "adaptive" in str(e).lower() or "size of tensor" in str(e).lower() or "decompose" in str(e).lower(), e
        return
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    model = checkpoint.load_model("dycaconv")
    _, img = test_scenes
    x = _resize(img[:8], 96)
    with torch.no_grad():
        ref = model(onnx_export.standardise(x)).numpy()
    got = np.concatenate([session.run(["logits"], {"image": x[i:i + 1].numpy()})[0] for i in range(len(x))])
    assert np.abs(got - ref).max() > 10 * LOGIT_TOL, "the unswapped graph is right at 96: the swap is not needed"
