"""Reading the SE gates of PP-OCRv4's text detector (attnlib.ppocr): the blocks found match the graph,
the gates read from onnxruntime match a numpy recomputation from the graph's own weights, the detector
marks text, and bad input is refused."""

import doctest

import numpy as np
import pytest

from attnlib import images, ppocr

pytestmark = pytest.mark.skipif(
    bool(ppocr.missing()),
    reason=f"needs {', '.join(ppocr.missing())} (install: {ppocr.INSTALL})")


@pytest.fixture(scope="module")
def blocks():
    return ppocr.se_blocks()


@pytest.fixture(scope="module")
def page():
    return ppocr.read(images.load_photo("page"), with_features=True, threads=1)


def test_docstring_example():
    result = doctest.testmod(ppocr, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted > 0 and result.failed == 0


def test_model_file_is_found_without_importing_the_package():
    import sys

    path = ppocr.model_path()
    assert path.name == ppocr.MODEL_FILE and path.stat().st_size > 1_000_000
    assert "rapidocr_onnxruntime" not in sys.modules


def test_se_blocks_match_the_graph(blocks):
    import onnx

    graph = onnx.load(str(ppocr.model_path())).graph
    ops = [n.op_type for n in graph.node]
    # every HardSigmoid and every GlobalAveragePool of this graph belongs to one SE block
    assert len(blocks) == ops.count("HardSigmoid") == ops.count("GlobalAveragePool") == 10
    assert [b.part for b in blocks].count("backbone") == 2
    assert [(b.channels, b.stride) for b in blocks if b.part == "backbone"] == [(192, 32), (384, 32)]
    neck = [b for b in blocks if b.part == "neck"]
    assert sorted((b.role, b.channels, b.stride) for b in neck) == sorted(
        [("lateral 1×1", 96, s) for s in (4, 8, 16, 32)] + [("output 3×3", 24, s) for s in (4, 8, 16, 32)])
    for b in blocks:
        w = ppocr.se_weights(b)
        assert w["w1"].shape == (b.hidden, b.channels, 1, 1) and w["w2"].shape == (b.channels, b.hidden, 1, 1)
        assert b.channels == 4 * b.hidden and 0 < b.slope < 1 and b.offset == 0.5


def test_gates_are_in_unit_interval_with_shape_1c11(blocks, page):
    assert len(page.raw_gates) == len(blocks)
    for b, g in zip(blocks, page.raw_gates):
        assert g.shape == (1, b.channels, 1, 1), b
        assert g.min() >= 0 and g.max() <= 1, b
        assert page.features[b.index].shape[:2] == (1, b.channels)
        assert page.features[b.index].shape[2] * b.stride == page.image.shape[0]


@pytest.mark.parametrize("which", [0, 1, 5])
def test_gate_recomputed_in_numpy_equals_onnxruntime(blocks, page, which):
    b = blocks[which]
    mine = ppocr.gate_numpy(page.features[b.index], b)
    np.testing.assert_allclose(mine, page.raw_gates[b.index], atol=2e-5, rtol=0)


def test_preprocessing_follows_rapidocr():
    assert ppocr.input_size(300, 451) == (736, 1120)      # shorter side up to 736, multiples of 32
    assert ppocr.input_size(1000, 800) == (992, 800)      # large enough: only rounded
    assert ppocr.input_size(1000, 4000) == (736, 2848)    # longer side to 2000 first, then shorter to 736
    img = np.zeros((40, 64, 3), np.uint8)
    img[..., 0] = 255                                     # pure red
    x = ppocr.preprocess(img)
    assert x.shape == (1, 3, 736, 1184) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, :, 0, 0], [-1, -1, 1])  # BGR order, (x/255 - 0.5) / 0.5


def test_probability_map_is_higher_on_text_than_on_photos_without_text(page):
    # measured: the page's text body (fixed box, rows 15-90 %, columns 2-98 %) averages 0.13; the
    # whole-photo averages of photos without text are at most 0.024 (the cat: its eyes are false detections)
    p = page.probability
    h, w = p.shape
    body = p[int(0.15 * h):int(0.9 * h), int(0.02 * w):int(0.98 * w)]
    assert p.shape == page.image.shape[:2] and 0 <= p.min() and p.max() <= 1
    for name in ("cat", "coffee", "brick"):
        other = ppocr.read(images.load_photo(name), threads=1).probability
        assert body.mean() > 3 * other.mean(), name
        assert (body > ppocr.THRESH).mean() > 3 * (other > ppocr.THRESH).mean(), name


@pytest.mark.parametrize("bad, match", [
    (np.zeros((1, 1, 3), np.uint8), "too small"),
    (np.zeros((64, 64), np.uint8), r"\(H, W, 3\) RGB"),
    (np.zeros((64, 64, 4), np.uint8), r"\(H, W, 3\) RGB"),
    (np.zeros((64, 64, 3), np.int64), "dtype"),
    (np.full((64, 64, 3), 2.0), r"\[0, 1\]"),
    (np.zeros((40, 400, 3), np.uint8), "elongated"),
    ([[1, 2, 3]], "numpy array"),
])
def test_bad_input_is_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        ppocr.read(bad)


def test_missing_package_error_names_the_pip_command(monkeypatch):
    monkeypatch.setattr(ppocr, "package_dir", lambda: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps rapidocr-onnxruntime"):
        ppocr.model_path()
