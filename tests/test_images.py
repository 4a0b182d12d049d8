"""The offline photo loader."""

import numpy as np
import pytest
import torch

from attnlib import images


def test_every_listed_photo_loads_as_rgb_uint8():
    for name in images.list_photos():
        img = images.load_photo(name)
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3, name
        assert min(img.shape[:2]) >= 128, name
        assert img.std() > 5, f"{name} looks blank"


def test_unknown_photo_lists_the_available_ones():
    with pytest.raises(ValueError, match="available: astronaut"):
        images.load_photo("dog")


def test_to_tensor_normalises_and_resizes():
    x = images.to_tensor(images.load_photo("cat"), (32, 48))
    assert x.shape == (1, 3, 32, 48) and x.dtype == torch.float32
    torch.testing.assert_close(x.mean(dim=(2, 3)), torch.zeros(1, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(x.std(dim=(2, 3)), torch.ones(1, 3), atol=1e-4, rtol=0)
