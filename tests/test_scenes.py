"""The zoo's data: Fashion-MNIST read and verified, instance-disjoint splits, deterministic scenes whose
masks are the target's own pixels, and background bands that never cross splits."""

import gzip

import numpy as np
import pytest

from attnlib.zoo import backgrounds, fashion, scenes, train


# ---------------------------------------------------------------- the data set

def test_files_verified_and_shapes():
    d = fashion.data_dir(download=False)
    for name, digest in fashion.CHECKSUMS.items():
        assert fashion.sha256(d / name) == digest
    tr, te = fashion.garments("train"), fashion.garments("test")
    va = fashion.garments("val")
    assert tr[0].shape == (55000, 28, 28) and va[0].shape == (5000, 28, 28) and te[0].shape == (10000, 28, 28)
    assert np.bincount(va[1]).tolist() == [500] * 10            # balanced validation garments
    assert np.bincount(te[1]).tolist() == [1000] * 10


def test_splits_hold_disjoint_instances_by_id_and_by_pixels():
    ids = {s: set(fashion.garments(s)[2].tolist()) for s in fashion.SPLITS}
    assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"] and not ids["val"] & ids["test"]
    assert len(ids["train"]) + len(ids["val"]) == 60000
    # by content too: no image of the test set is byte-identical to a training or validation image
    # (Fashion-MNIST holds a few exact duplicates across its files; they must not cross our splits)
    def digests(split):
        return {hash(img.tobytes()) for img in fashion.garments(split)[0]}
    test, val = digests("test"), digests("val")
    train_d = digests("train")
    crossing = (test & train_d) | (test & val) | (val & train_d)
    assert len(crossing) <= 25, f"{len(crossing)} identical images cross splits"


def test_scenes_of_a_split_use_only_that_split_garments():
    for split in fashion.SPLITS:
        s = scenes.make_scenes(split, 60, seed=3)
        own = set(fashion.garments(split)[2].tolist())
        used = s.garment_ids()
        assert len(used) > 300 and used <= own, split
    # the shipped models' training scenes (the first 3,000 of them) and every test scene they are scored on
    train_ids = scenes.make_scenes("train", 3000, seed=train.DATA_SEED).garment_ids()
    test_ids = train.scene_set("test", train.N_TEST).garment_ids()
    assert not train_ids & test_ids
    assert not train_ids & set(fashion.garments("val")[2].tolist())


def test_missing_files_name_the_package_and_colab_route(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion, "DEBIAN_DIR", tmp_path / "none")
    monkeypatch.setattr(fashion, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.delenv("ATTNLIB_FASHION_MNIST", raising=False)
    with pytest.raises(fashion.DataError, match=r"dataset-fashion-mnist.*download=True.*Colab"):
        fashion.data_dir(download=False)


def test_corrupted_file_is_refused(tmp_path, monkeypatch):
    src = fashion.data_dir(download=False)
    for name in fashion.CHECKSUMS:
        (tmp_path / name).write_bytes((src / name).read_bytes())
    labels = tmp_path / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(labels.read_bytes()))
    raw[100] = (raw[100] + 1) % 10                                  # one label changed
    labels.write_bytes(gzip.compress(bytes(raw)))
    monkeypatch.setenv("ATTNLIB_FASHION_MNIST", str(tmp_path))
    with pytest.raises(fashion.DataError, match=r"t10k-labels-idx1-ubyte\.gz is corrupted"):
        fashion.data_dir(download=False)


def test_idx_reader_rejects_a_file_that_is_not_idx(tmp_path):
    bad = tmp_path / "x.gz"
    bad.write_bytes(gzip.compress(b"not an idx file at all"))
    with pytest.raises(fashion.DataError, match="not an idx file"):
        fashion._read_idx(bad)


# ---------------------------------------------------------------- scenes

def test_same_seed_same_scene_and_order_independent():
    a = scenes.make_scenes("val", 6, seed=3)
    b = scenes.make_scenes("val", 6, seed=3)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.masks, b.masks)
    alone = scenes.render_scene("val", 4, seed=3)
    assert np.array_equal(alone.image, a.images[4]) and alone.box == tuple(a.boxes[4])


def test_other_seed_or_split_gives_other_scenes():
    a = scenes.make_scenes("train", 4, seed=0)
    assert not np.array_equal(a.images, scenes.make_scenes("train", 4, seed=1).images)
    assert not np.array_equal(a.images, scenes.make_scenes("test", 4, seed=0).images)


def test_mask_is_the_target_own_pixels_inside_its_box():
    s = scenes.make_scenes("test", 80, seed=1)
    share = s.masks.reshape(80, -1).mean(1)
    assert (share > 0.01).all() and (share < 0.35).all()
    for m, (x0, y0, x1, y1) in zip(s.masks, s.boxes):
        ys, xs = np.nonzero(m)
        assert ys.min() >= y0 and ys.max() < y1 and xs.min() >= x0 and xs.max() < x1
        assert m.sum() < (x1 - x0) * (y1 - y0)                 # a garment, not its box


def test_mask_pixels_show_the_garment_not_the_background(monkeypatch):
    """Paint every background black and render without colour jitter on the background: the mask's
    pixels are bright (the tinted garment) and every pixel outside the mask that is bright belongs to
    clutter or a distractor (so rendering with those off leaves the outside black)."""
    monkeypatch.setattr(scenes, "_photo", lambda name: np.zeros((600, 1500, 3), np.uint8))
    monkeypatch.setattr(scenes, "FRAGMENTS", (0, 0))
    for i in range(20):
        s = scenes.render_scene("test", i, seed=2, distractor=False)
        img = s.image.astype(int).sum(-1)
        assert (img[~s.mask] <= 3 * 64).mean() > 0.99, i      # outside: black (a soft edge at most)
        assert np.median(img[s.mask]) > 40, i


def test_labels_scales_and_overrides():
    s = scenes.make_scenes("test", 100, seed=0)
    assert set(s.labels) <= set(range(10)) and len(set(s.labels)) >= 8
    x0, y0, x1, y1 = s.boxes.T
    assert (x0 >= 0).all() and (y0 >= 0).all() and (x1 <= scenes.SIZE).all() and (y1 <= scenes.SIZE).all()
    assert np.allclose(np.maximum(x1 - x0, y1 - y0), np.round(scenes.BASE * s.scales), atol=1)
    assert (s.scales >= scenes.SCALE_RANGE[0]).all() and (s.scales <= scenes.SCALE_RANGE[1]).all()
    a = scenes.render_scene("test", 5, scale=2.0, label=3, distractor=False)
    assert a.label == 3 and a.scale == 2.0 and a.distractor == -1
    assert max(a.box[2] - a.box[0], a.box[3] - a.box[1]) == 2 * scenes.BASE


def test_scale_and_rotation_keep_the_same_garment_and_background():
    base = scenes.render_scene("test", 7, seed=0)
    for kw in (dict(scale=1.4), dict(rotate=1)):
        other = scenes.render_scene("test", 7, seed=0, **kw)
        assert other.garment == base.garment and other.background == base.background
        assert other.region == base.region and other.fragments == base.fragments
    r = scenes.render_scene("test", 7, seed=0, rotate=1)
    h, w = base.box[3] - base.box[1], base.box[2] - base.box[0]
    assert (r.box[3] - r.box[1], r.box[2] - r.box[0]) == (w, h)  # a quarter turn swaps the sides


@pytest.mark.parametrize("kwargs, match", [
    (dict(split="holdout", index=0), "split"),
    (dict(split="test", index=-1), "index"),
    (dict(split="test", index=0, seed=1.5), "seed"),
    (dict(split="test", index=0, seed=-2), "seed"),
    (dict(split="test", index=0, scale=3.0), "scale"),
    (dict(split="test", index=0, label=99), "label"),
    (dict(split="test", index=0, rotate=5), "rotate"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        scenes.render_scene(**kwargs)


@pytest.mark.parametrize("n", [0, -3, 2.5, True])
def test_bad_scene_count(n):
    with pytest.raises(ValueError, match="n must be a positive int"):
        scenes.make_scenes("test", n)


# ---------------------------------------------------------------- backgrounds

def test_split_bands_are_disjoint():
    for bg in backgrounds.BACKGROUNDS:
        spans = sorted(backgrounds.split_region(bg, s)[::2] for s in backgrounds.SPLITS)
        for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
            assert a1 < b0, f"bands of {bg[0]} overlap: {spans}"


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_backgrounds_come_from_the_split_band_only(split, monkeypatch):
    cuts = []
    original = scenes._background_patch

    def spy(split_, rng, out, smin, smax):
        b, region, rgb = original(split_, rng, out, smin, smax)
        cuts.append((split_, b, region))
        return b, region, rgb

    monkeypatch.setattr(scenes, "_background_patch", spy)
    for i in range(40):
        scenes.render_scene(split, i, seed=7)
    assert len(cuts) == 40
    for split_, b, (x0, y0, x1, y1) in cuts:
        assert split_ == split
        bx0, by0, bx1, by1 = backgrounds.split_region(backgrounds.BACKGROUNDS[b], split)
        assert bx0 <= x0 < x1 <= bx1 and by0 <= y0 < y1 <= by1


def test_test_background_pixels_never_reach_training_scenes(monkeypatch):
    """Paint the test bands of every background a colour no photo has and render training scenes
    with grey garments and no jitter: that colour never appears."""
    marker = np.array([255, 0, 255], np.uint8)
    painted = {}
    for name, _ in backgrounds.BACKGROUNDS:
        img = scenes._photo(name).copy()
        for bg in backgrounds.BACKGROUNDS:
            if bg[0] == name:
                x0, y0, x1, y1 = backgrounds.split_region(bg, "test")
                img[y0:y1, x0:x1] = marker
        painted[name] = img
    monkeypatch.setattr(scenes, "_photo", lambda n: painted.get(n, scenes.images.load_photo(n)))
    monkeypatch.setattr(scenes, "_jitter", lambda rgb, rng, strength=1.0: rgb)
    monkeypatch.setattr(scenes, "_tint", lambda rng: np.array([0.5, 0.5, 0.5], np.float32))
    monkeypatch.setattr(scenes, "FRAGMENTS", (0, 0))

    def has_marker(img):
        return (np.abs(img.astype(int) - marker).sum(-1) < 30).any()

    assert has_marker(scenes.render_scene("test", 0, seed=0, distractor=False).image)
    for i in range(60):
        assert not has_marker(scenes.render_scene("train", i, seed=0).image), f"test-band pixels in scene {i}"


def test_box_mask_and_normalise():
    m = scenes.box_mask(np.array([[2, 3, 5, 4]]), size=8)
    assert m.sum() == 3 and m[0, 3, 2:5].all()
    x = scenes.normalise(scenes.make_scenes("test", 2).images)
    assert x.shape == (2, 3, scenes.SIZE, scenes.SIZE)
    assert x.mean(dim=(2, 3)).abs().max() < 1e-4
