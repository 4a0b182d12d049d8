"""The registry: names, metadata, create_block and its errors; the device helper."""

import pytest
import torch

import attnlib
from attnlib.registry import FAMILIES

ISSUE_2_NAMES = {"se", "eca", "cbam_channel", "cbam_spatial", "cbam", "sk", "cse", "sse", "scse"}


def test_list_blocks_returns_names_with_metadata():
    names = attnlib.list_blocks()
    assert len(names) == len(set(names))
    for name in names:
        info = attnlib.block_info(name)
        assert info.name == name
        assert info.family in FAMILIES
        assert info.paper and isinstance(info.year, int) and 2010 < info.year < 2030
        assert info.arxiv is None or (len(info.arxiv) == 10 and info.arxiv[4] == ".")
        assert info.cls.registry_name == name


def test_families_partition_the_registry():
    by_family = [n for f in FAMILIES for n in attnlib.list_blocks(f)]
    assert sorted(by_family) == sorted(attnlib.list_blocks())


def test_the_issue_2_blocks_are_registered_with_their_papers():
    expected = {
        "se": ("channel", 2018, "1709.01507"), "eca": ("channel", 2020, "1910.03151"),
        "cbam_channel": ("channel", 2018, "1807.06521"), "cbam_spatial": ("spatial", 2018, "1807.06521"),
        "cbam": ("hybrid", 2018, "1807.06521"), "sk": ("channel", 2019, "1903.06586"),
        "cse": ("channel", 2018, "1803.02579"), "sse": ("spatial", 2018, "1803.02579"),
        "scse": ("hybrid", 2018, "1803.02579"),
    }
    assert set(expected) == ISSUE_2_NAMES <= set(attnlib.list_blocks())
    for name, (family, year, arxiv) in expected.items():
        info = attnlib.block_info(name)
        assert (info.family, info.year, info.arxiv) == (family, year, arxiv), name


def test_se_metadata():
    info = attnlib.block_info("se")
    assert (info.family, info.year, info.arxiv) == ("channel", 2018, "1709.01507")
    assert isinstance(attnlib.create_block("se", 32), info.cls)


def test_unknown_name_lists_known_names():
    with pytest.raises(ValueError) as err:
        attnlib.create_block("squeeze", 64)
    message = str(err.value)
    assert "'squeeze'" in message
    for name in attnlib.list_blocks():
        assert name in message


def test_unknown_family_is_rejected():
    with pytest.raises(ValueError, match="family"):
        attnlib.list_blocks("attention")


def test_registering_a_second_class_under_a_taken_name_fails():
    with pytest.raises(ValueError, match="already registered"):
        @attnlib.register("se", family="channel", paper="x", year=2020, arxiv=None)
        class Other(torch.nn.Module):
            pass


def test_register_rejects_non_modules_and_bad_families():
    with pytest.raises(TypeError):
        attnlib.register("not_a_module", family="channel", paper="x", year=2020, arxiv=None)(int)
    with pytest.raises(ValueError, match="family"):
        attnlib.register("x", family="gating", paper="x", year=2020, arxiv=None)


def test_device_picks_cuda_when_available():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert attnlib.device().type == expected


def test_stride_on_a_shape_keeping_block_is_a_clear_value_error():
    conv_like = {"sk", "dycaconv", "dynamic_conv", "dka"}
    for name in attnlib.list_blocks():
        if name in conv_like:
            continue
        with pytest.raises(ValueError, match=r"stride=2 is not allowed: .* keeps its input's shape"):
            attnlib.create_block(name, 32, stride=2)
    for name in conv_like & set(attnlib.list_blocks()):
        block = attnlib.create_block(name, 32, stride=2).eval()
        assert block(torch.randn(1, 32, 8, 8)).shape == (1, 32, 4, 4)
