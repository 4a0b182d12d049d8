"""The zoo's scene generator: deterministic, disjoint splits, sane boxes and labels."""

import numpy as np
import pytest

from attnlib.zoo import objects, scenes


def test_same_seed_same_scene_and_order_independent():
    a = scenes.make_scenes("val", 6, seed=3)
    b = scenes.make_scenes("val", 6, seed=3)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.boxes, b.boxes)
    # scene 4 rendered alone equals scene 4 of the batch
    alone = scenes.render_scene("val", 4, seed=3)
    assert np.array_equal(alone.image, a.images[4]) and alone.box == tuple(a.boxes[4])


def test_other_seed_or_split_gives_other_scenes():
    a = scenes.make_scenes("train", 4, seed=0)
    assert not np.array_equal(a.images, scenes.make_scenes("train", 4, seed=1).images)
    assert not np.array_equal(a.images, scenes.make_scenes("test", 4, seed=0).images)


def test_split_bands_are_disjoint():
    for bg in objects.BACKGROUNDS:
        spans = sorted(objects.split_region(bg, s)[::2] for s in objects.SPLITS)
        for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
            assert a1 < b0, f"bands of {bg[0]} overlap: {spans}"


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_backgrounds_and_clutter_come_from_the_split_band_only(split, monkeypatch):
    """Record every background crop the generator cuts, over many scenes: each lies inside its split's band."""
    cuts = []
    original = scenes._background_patch

    def spy(split_, rng, out, smin, smax):
        b, region, rgb = original(split_, rng, out, smin, smax)
        cuts.append((split_, b, region))
        return b, region, rgb

    monkeypatch.setattr(scenes, "_background_patch", spy)
    for i in range(40):
        scenes.render_scene(split, i, seed=7)
    assert len(cuts) >= 80  # a background and at least one clutter patch per scene
    for split_, b, (x0, y0, x1, y1) in cuts:
        assert split_ == split
        bx0, by0, bx1, by1 = objects.split_region(objects.BACKGROUNDS[b], split)
        assert bx0 <= x0 < x1 <= bx1 and by0 <= y0 < y1 <= by1


def test_test_background_pixels_never_reach_training_scenes(monkeypatch):
    """Independent check on pixels: paint the test bands of every background a colour no photo has, and
    render training scenes: that colour never appears."""
    marker = np.array([255, 0, 255], np.uint8)
    painted = {}
    for name, _ in objects.BACKGROUNDS:
        img = scenes._photo(name).copy()
        for bg in objects.BACKGROUNDS:
            if bg[0] == name:
                x0, y0, x1, y1 = objects.split_region(bg, "test")
                img[y0:y1, x0:x1] = marker
        painted[name] = img
    monkeypatch.setattr(scenes, "_photo", lambda n: painted.get(n, scenes.images.load_photo(n)))
    monkeypatch.setattr(scenes, "_jitter", lambda rgb, rng, strength=1.0: rgb)  # keep colours exact
    test = scenes.render_scene("test", 0, seed=0)
    assert (np.abs(test.image.astype(int) - marker).sum(-1) < 30).any(), "the marker must show in a test scene"
    for i in range(60):
        img = scenes.render_scene("train", i, seed=0).image.astype(int)
        assert not (np.abs(img - marker).sum(-1) < 30).any(), f"test-band pixels in training scene {i}"


def test_boxes_labels_scales():
    s = scenes.make_scenes("test", 50, seed=0)
    assert s.images.shape == (50, scenes.SIZE, scenes.SIZE, 3) and s.images.dtype == np.uint8
    assert set(s.labels) <= set(range(len(objects.CLASSES)))
    x0, y0, x1, y1 = s.boxes.T
    assert (x0 >= 0).all() and (y0 >= 0).all() and (x1 <= scenes.SIZE).all() and (y1 <= scenes.SIZE).all()
    longest = np.maximum(x1 - x0, y1 - y0)
    assert np.allclose(longest, np.round(scenes.BASE * s.scales), atol=1)
    assert (s.scales >= 0.5).all() and (s.scales <= 2.0).all()


def test_forced_scale_and_label():
    a = scenes.render_scene("test", 5, scale=2.0, label=3, distractor=False)
    assert a.label == 3 and a.scale == 2.0 and a.distractor == -1
    x0, y0, x1, y1 = a.box
    assert max(x1 - x0, y1 - y0) == 2 * scenes.BASE


@pytest.mark.parametrize("kwargs, match", [
    (dict(split="holdout", index=0), "split"),
    (dict(split="test", index=-1), "index"),
    (dict(split="test", index=0, scale=3.0), "scale"),
    (dict(split="test", index=0, label=99), "label"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        scenes.render_scene(**kwargs)


def test_box_mask_and_normalise():
    m = scenes.box_mask(np.array([[2, 3, 5, 4]]), size=8)
    assert m.sum() == 3 and m[0, 3, 2:5].all()
    x = scenes.normalise(scenes.make_scenes("test", 2).images)
    assert x.shape == (2, 3, scenes.SIZE, scenes.SIZE)
    assert x.mean(dim=(2, 3)).abs().max() < 1e-4
