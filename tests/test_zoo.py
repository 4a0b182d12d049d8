"""The model zoo: shipped weights, scores, a short training run, clear errors for bad files."""

import json

import numpy as np
import pytest
import torch

import attnlib
from attnlib.zoo import checkpoint, evaluate, model as zmodel, pipeline, scenes, scores, train

SHIPPED = checkpoint.available()


# ---------------------------------------------------------------- shipped weights

def test_baseline_weights_ship():
    assert "baseline" in SHIPPED, f"no shipped baseline weights in {checkpoint.WEIGHTS_DIR}"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_reach_card_accuracy(name):
    card = checkpoint.read_card(name)
    model = checkpoint.load_model(name)
    acc = evaluate.accuracy(model, pipeline.test_set())
    assert abs(acc - card["test"]["accuracy"]) <= 0.02, (name, acc, card["test"]["accuracy"])
    path = checkpoint.paths(name)[0]
    assert path.stat().st_size <= 3 * 2**20, f"{path} is over 3 MB"


def test_shipped_weights_fit_the_size_budget():
    total = sum(checkpoint.paths(n)[0].stat().st_size for n in SHIPPED)
    assert total <= 40 * 2**20


@pytest.mark.parametrize("name", [n for n in SHIPPED
                                  if "localisation_headline" in checkpoint.read_card(n).get("scores", {})])
def test_localisation_recomputed_matches_card(name):
    card = checkpoint.read_card(name)
    stage = card["scores"]["localisation_headline"]["stage"]
    data = pipeline.test_set()
    maps = scores.attention_maps(checkpoint.load_model(name), data)["spatial"][stage]
    if maps.ndim == 4:  # K candidate maps (Encoding): the card names the one chosen on validation scenes
        maps = maps[:, card["scores"]["localisation"][str(stage)]["map_chosen_on_validation"]]
    got = float(scores.localisation(maps, data.boxes).mean())
    assert got == pytest.approx(card["scores"]["localisation_headline"]["mean"], abs=0.02)


def test_baseline_is_not_saturated():
    card = checkpoint.read_card("baseline")
    assert card["test"]["accuracy"] < 0.95


@pytest.mark.parametrize("name", SHIPPED)
def test_cards_have_every_field(name):
    card = checkpoint.read_card(name)
    for key in ("config", "block", "training", "library_version", "test", "parameters"):
        assert key in card, (name, key)
    for key in ("seed", "steps", "device", "seconds"):
        assert key in card["training"], (name, key)


# ---------------------------------------------------------------- training and files

@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    """A 20-step CPU training run (batch 16, one thread) of an SE model on 64 scenes, saved unscored."""
    d = tmp_path_factory.mktemp("zoo")
    torch.manual_seed(0)
    before = zmodel.ZooNet("se").state_dict()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        card = pipeline.train_and_save("se", steps=20, device="cpu", directory=d, progress=False,
                                       n_train=64, batch_size=16, score=False)
    finally:
        torch.set_num_threads(threads)
    return d, card, before


def test_twenty_step_training_runs_on_cpu(short_run):
    d, card, before = short_run
    assert card["training"]["steps"] == 20 and card["training"]["device"].startswith("cpu")
    assert np.isfinite(card["training"]["final_train_loss"])
    model = checkpoint.load_model("se", d)
    after = model.state_dict()
    moved = [k for k in before if before[k].is_floating_point() and not torch.allclose(before[k], after[k])]
    assert len(moved) > 10  # the run really updated the weights
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, len(scenes.CLASSES))


def test_training_is_deterministic():
    a, _ = train.train("eca", steps=3, n_train=64, batch_size=8, device="cpu", progress=False)
    b, _ = train.train("eca", steps=3, n_train=64, batch_size=8, device="cpu", progress=False)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k


def test_corrupted_file_fails_naming_the_file(short_run, tmp_path):
    d, _, _ = short_run
    src, card = checkpoint.paths("se", d)
    bad = tmp_path / "se.safetensors"
    data = src.read_bytes()
    bad.write_bytes(data[: len(data) // 2])  # truncated
    (tmp_path / "se.json").write_text(card.read_text())
    with pytest.raises(checkpoint.WeightsError, match=r"se\.safetensors.*corrupted"):
        checkpoint.load_model("se", tmp_path)


def test_weights_of_another_configuration_fail_naming_the_mismatch(short_run, tmp_path):
    d, _, _ = short_run
    path = checkpoint.paths("se", d)[0]
    other = zmodel.ZooNet("se", widths=(16, 32, 64, 96))
    with pytest.raises(checkpoint.WeightsError, match=r"se\.safetensors.*widths.*96"):
        checkpoint.load_state(other, path)
    with pytest.raises(checkpoint.WeightsError, match=r"se\.safetensors.*block.*'se'.*'eca'"):
        checkpoint.load_state(zmodel.ZooNet("eca"), path)


def test_tensor_shape_mismatch_is_named(short_run, tmp_path):
    """Same configuration in the metadata but a tensor of another shape: the tensor is named."""
    from safetensors.torch import load_file, save_file
    from safetensors import safe_open

    d, _, _ = short_run
    path = checkpoint.paths("se", d)[0]
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    tensors = load_file(str(path))
    tensors["fc.weight"] = torch.zeros(3, 128, dtype=torch.float16)
    bad = tmp_path / "se.safetensors"
    save_file(tensors, str(bad), metadata=meta)
    with pytest.raises(checkpoint.WeightsError, match=r"se\.safetensors.*fc\.weight"):
        checkpoint.load_state(zmodel.ZooNet("se"), bad)


def test_missing_card_says_how_to_train(tmp_path):
    with pytest.raises(checkpoint.WeightsError, match="python -m attnlib.zoo train --block gc"):
        checkpoint.load_model("gc", tmp_path)


def test_weights_are_not_pickles(short_run):
    d, _, _ = short_run
    head = checkpoint.paths("se", d)[0].read_bytes()[:16]
    assert not head.startswith(b"\x80") and not head.startswith(b"PK")  # pickle protocol / torch zip


# ---------------------------------------------------------------- the model and schedules

@pytest.mark.parametrize("name", attnlib.list_blocks())
def test_every_registered_block_fits_the_backbone(name):
    m = zmodel.ZooNet(name).eval()
    assert m(torch.randn(2, 3, 64, 64)).shape == (2, len(scenes.CLASSES))
    assert m.block_modules(), name


def test_baseline_has_no_block():
    m = zmodel.ZooNet(None)
    assert m.block_modules() == {} and m.kind is None


def test_unknown_block_raises():
    with pytest.raises(ValueError, match="unknown block"):
        zmodel.ZooNet("no_such_block")


def test_temperature_schedule():
    assert train.temperature_at(0, 100, 30.0) == 30.0
    assert train.temperature_at(15, 100, 30.0) == pytest.approx(15.5)
    assert train.temperature_at(30, 100, 30.0) == 1.0
    assert train.temperature_at(99, 100, 30.0) == 1.0


def test_dynamic_conv_temperature_is_annealed_during_training():
    if "dynamic_conv" not in attnlib.list_blocks():
        pytest.skip("dynamic_conv not registered")
    m, _ = train.train("dynamic_conv", steps=4, n_train=32, batch_size=4, device="cpu", progress=False)
    temps = {float(mod.temperature) for mod in m.modules() if hasattr(mod, "set_temperature")}
    # 4 steps, annealed over the first round(0.3*4)=1 step: the last step ran at temperature 1
    assert temps == {1.0}
    # the card records the temperature the weights are for, so a loaded model runs at 1, not at 30
    assert m.config()["block_kwargs"]["temperature"] == 1.0
    assert zmodel.ZooNet("dynamic_conv", block_kwargs=m.config()["block_kwargs"]).config() == m.config()


def test_config_records_every_block_default(tmp_path):
    """Weights keep their configuration when a block's default changes later: the card holds the
    defaults in force at training time, and loading rebuilds exactly that."""
    m = zmodel.ZooNet("cbam", block_kwargs={"kernel_size": 3})
    kw = m.config()["block_kwargs"]
    assert kw["kernel_size"] == 3 and {"reduction", "batch_norm", "pool_order"} <= set(kw)
    flipped = {**kw, "batch_norm": not kw["batch_norm"]}
    m2 = zmodel.ZooNet("cbam", block_kwargs=flipped)
    checkpoint.save(m2, {"test": {"accuracy": 0.0}}, tmp_path)
    loaded = checkpoint.load_model("cbam", tmp_path)
    assert loaded.config()["block_kwargs"]["batch_norm"] == flipped["batch_norm"]
    with pytest.raises(ValueError, match="no keyword argument"):
        zmodel.ZooNet("se", block_kwargs={"no_such_argument": 1})


# ---------------------------------------------------------------- scores

def test_uniform_map_scores_one_and_box_map_scores_inverse_area():
    boxes = np.array([[8, 16, 40, 32], [0, 0, 64, 64], [10, 10, 20, 60]])
    uniform = torch.ones(3, 16, 16)
    assert torch.allclose(scores.localisation(uniform, boxes), torch.ones(3), atol=1e-5)
    inside = scenes.box_mask(boxes).float()
    area = inside.mean(dim=(1, 2))
    assert torch.allclose(scores.localisation(inside, boxes), 1 / area, atol=1e-4)
    outside = 1 - inside
    outside[1] = 1  # box covers the whole image: any map scores 1
    got = scores.localisation(outside, boxes)
    assert got[0] == pytest.approx(0, abs=1e-6) and got[1] == pytest.approx(1)


def test_bootstrap_interval_brackets_the_mean_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    small, large = rng.normal(2, 1, 50), rng.normal(2, 1, 2000)
    lo, hi = scores.bootstrap_ci(small)
    assert lo < small.mean() < hi
    lo2, hi2 = scores.bootstrap_ci(large)
    assert (hi2 - lo2) < (hi - lo) / 3


def test_selectivity_zero_for_class_blind_gates_positive_otherwise():
    labels = np.repeat(np.arange(4), 25)
    blind = torch.rand(1, 8).repeat(100, 1)
    assert scores.selectivity(blind, labels, 4) == pytest.approx(0, abs=1e-7)
    tuned = torch.zeros(100, 8)
    tuned[np.arange(100), labels] = 1.0  # class c opens channel c only
    # class means are one-hot rows over 8 channels; the mean over classes is 0.25 on channels 0-3
    expected = (4 * (0.75 + 3 * 0.25)) / (4 * 8)
    assert scores.selectivity(tuned, labels, 4) == pytest.approx(expected)


def test_grad_cam_on_a_model_with_known_answer():
    """A model whose logit for class y is the sum of the last stage's channel y: Grad-CAM equals the
    ReLU of that channel's map."""
    data = scenes.make_scenes("val", 4)
    m = zmodel.ZooNet(None).eval()
    with torch.no_grad():
        m.fc.weight.zero_()
        m.fc.bias.zero_()
        for c in range(len(scenes.CLASSES)):
            m.fc.weight[c, c] = 1.0
    cam = scores.grad_cam(m, data, stage=3)
    x, y = data.tensors()
    with torch.no_grad():
        f = m.features(x)
    expected = torch.relu(f[torch.arange(4), y] / (f.shape[2] * f.shape[3]))
    assert torch.allclose(cam, expected, atol=1e-6)


def test_attention_maps_shapes_for_spatial_and_gates():
    data = scenes.make_scenes("val", 6)
    for name, kind in (("cbam", "both"), ("se", "gates"), ("sse", "spatial")):
        if name not in attnlib.list_blocks():
            continue
        out = scores.attention_maps(zmodel.ZooNet(name).eval(), data, batch_size=4)
        if kind in ("both", "spatial"):
            assert out["spatial"][1].shape == (6, 16, 16)
            assert out["spatial"][3].shape == (6, 4, 4)
        if kind in ("both", "gates"):
            assert out["gates"][2].shape == (6, 64)


def test_nonlocal_map_uses_each_scene_own_centre_as_query():
    if "nonlocal" not in attnlib.list_blocks():
        pytest.skip("nonlocal not registered")
    data = scenes.make_scenes("val", 3)
    m = zmodel.ZooNet("nonlocal").eval()
    torch.manual_seed(0)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.3 * torch.randn_like(p))
    out = scores.attention_maps(m, data)["spatial"][1]
    for i in range(3):
        alone = scores.attention_maps(m, data.images[i:i + 1], boxes=data.boxes[i:i + 1])["spatial"][1]
        assert torch.allclose(out[i], alone[0], atol=1e-5)


def test_select_map_picks_the_map_that_covers_the_boxes():
    data = scenes.make_scenes("val", 5)
    inside = scenes.box_mask(data.boxes).float()
    small = torch.nn.functional.avg_pool2d(inside[:, None], 4)[:, 0]  # (5, 16, 16)
    maps = torch.stack([torch.rand(5, 16, 16), small, 1 - small], dim=1)
    assert scores.select_map(maps, data.boxes) == 1



def test_cli_evaluate_prints_json(capsys):
    from attnlib.zoo.__main__ import main

    assert main(["evaluate", "--block", "baseline", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    r = out["baseline"]
    assert r["test"]["accuracy"] == pytest.approx(r["card_test_accuracy"], abs=0.02)
    assert set(r["scores"]["grad_cam"]) == {"1", "2", "3"}


def test_headline_maps_for_the_book():
    spatial = [n for n in SHIPPED if "localisation_headline" in checkpoint.read_card(n).get("scores", {})]
    assert spatial, "no shipped model with a spatial map"
    data = scenes.make_scenes("test", 3)
    for name in spatial:
        m = scores.headline_maps(name, data)
        stage = checkpoint.read_card(name)["scores"]["localisation_headline"]["stage"]
        assert m.shape == (3, 64 >> (stage + 1), 64 >> (stage + 1)), name
    with pytest.raises(ValueError, match="no spatial map"):
        scores.headline_maps("se", data)
