"""Zoo files that lie: malformed cards and metadata, tensors of the wrong dtype and flipped bits all give
the zoo's WeightsError naming the file and the field."""

import json
import shutil

import pytest
import torch

from attnlib.zoo import checkpoint, model as zmodel


@pytest.fixture
def copy_dir(tmp_path):
    for suffix in (".safetensors", ".json"):
        shutil.copy(checkpoint.WEIGHTS_DIR / f"baseline{suffix}", tmp_path / f"baseline{suffix}")
    return tmp_path


def _edit_card(d, fn):
    path = d / "baseline.json"
    card = json.loads(path.read_text())
    path.write_text(json.dumps(fn(card)))


def test_the_copy_loads(copy_dir):
    assert checkpoint.load_model("baseline", copy_dir).num_classes == 10


def test_a_card_that_is_a_list(copy_dir):
    (copy_dir / "baseline.json").write_text("[1, 2, 3]")
    with pytest.raises(checkpoint.WeightsError, match=r"baseline\.json holds a JSON list, expected an object"):
        checkpoint.load_model("baseline", copy_dir)


def test_a_card_that_is_not_json(copy_dir):
    (copy_dir / "baseline.json").write_text("{not json")
    with pytest.raises(checkpoint.WeightsError, match=r"baseline\.json is not valid JSON"):
        checkpoint.load_model("baseline", copy_dir)


@pytest.mark.parametrize("edit, match", [
    (lambda c: {k: v for k, v in c.items() if k != "config"}, r"'config' must be an object"),
    (lambda c: {**c, "config": {k: v for k, v in c["config"].items() if k != "block"}}, r"no field 'block'"),
    (lambda c: {**c, "config": {**c["config"], "widths": "16,32"}}, r"'config\.widths' has the wrong type"),
    (lambda c: {**c, "config": {**c["config"], "widths": [16, 32.5, 64, 128]}}, r"'config\.widths' must be a list of ints"),
    (lambda c: {**c, "config": {**c["config"], "num_classes": True}}, r"'config\.num_classes' has the wrong type"),
    (lambda c: {**c, "config": {**c["config"], "block_kwargs": []}}, r"'config\.block_kwargs' has the wrong type"),
    (lambda c: {**c, "training": [1]}, r"'training' must be an object"),
    (lambda c: {**c, "data": "x"}, r"'data' must be an object"),
    (lambda c: {k: v for k, v in c.items() if k != "weights_sha256"}, r"no 'weights_sha256'"),
])
def test_malformed_card_fields_are_named(copy_dir, edit, match):
    _edit_card(copy_dir, edit)
    with pytest.raises(checkpoint.WeightsError, match=match) as e:
        checkpoint.load_model("baseline", copy_dir)
    assert "baseline.json" in str(e.value)


def test_a_flipped_bit_is_detected(copy_dir):
    path = copy_dir / "baseline.safetensors"
    data = bytearray(path.read_bytes())
    data[-100] ^= 0x01                                   # one bit of one weight
    path.write_bytes(bytes(data))
    with pytest.raises(checkpoint.WeightsError, match=r"baseline\.safetensors does not match the checksum"):
        checkpoint.load_model("baseline", copy_dir)


def _rewrite(path, tensors=None, metadata=None):
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        old = {k: f.get_tensor(k) for k in f.keys()}
    save_file(tensors(old) if tensors else old, str(path), metadata=metadata if metadata is not None else meta)


def test_metadata_that_is_not_json(copy_dir):
    path = copy_dir / "baseline.safetensors"
    _rewrite(path, metadata={"config": "{broken"})
    with pytest.raises(checkpoint.WeightsError, match=r"metadata 'config' is not valid JSON"):
        checkpoint.load_state(zmodel.ZooNet(None), path)


def test_metadata_missing_a_field(copy_dir):
    path = copy_dir / "baseline.safetensors"
    cfg = dict(checkpoint.read_card("baseline", copy_dir)["config"])
    del cfg["widths"]
    _rewrite(path, metadata={"config": json.dumps(cfg)})
    with pytest.raises(checkpoint.WeightsError, match=r"baseline\.safetensors \(metadata\): 'config' has no field 'widths'"):
        checkpoint.load_state(zmodel.ZooNet(None), path)


def test_a_tensor_of_the_wrong_dtype(copy_dir):
    path = copy_dir / "baseline.safetensors"
    _rewrite(path, tensors=lambda t: {**t, "fc.weight": t["fc.weight"].float()})
    with pytest.raises(checkpoint.WeightsError, match=r"wrong dtype: fc\.weight: torch\.float32 \(expected torch\.float16\)"):
        checkpoint.load_state(zmodel.ZooNet(None), path)
    _rewrite(path, tensors=lambda t: {**t, "fc.weight": t["fc.weight"].half(),
                                      "stages.0.bn.num_batches_tracked": torch.tensor(3.0)})
    with pytest.raises(checkpoint.WeightsError, match=r"num_batches_tracked: torch\.float32 \(expected torch\.int64\)"):
        checkpoint.load_state(zmodel.ZooNet(None), path)
