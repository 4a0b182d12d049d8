"""The model zoo: small models trained on scenes built from real photographs, with shipped weights.

Not imported by ``import attnlib``; use ``import attnlib.zoo``. Command line: ``python -m attnlib.zoo``
(``train --block NAME``, ``train --all``, ``evaluate --all --json``, ``list``).

    >>> import attnlib.zoo as zoo
    >>> model = zoo.load_model("baseline")                    # doctest: +SKIP
    >>> data = zoo.make_scenes("test", 8)
    >>> maps = zoo.attention_maps(zoo.load_model("cbam"), data)  # doctest: +SKIP
    >>> maps["spatial"][1].shape                                 # doctest: +SKIP
    torch.Size([8, 16, 16])

For a chapter's "Attention on real images": ``headline_maps(name, scenes)`` gives the maps a model's
card scores (Grad-CAM for ``"baseline"``), ready for ``attnlib.plotting.overlay``;
``class_excitation(model, scenes)`` the mean channel gate per class and stage.
"""

from .checkpoint import WeightsError, available, load_model
from .model import ZooNet
from .fashion import CLASSES
from .scenes import Scene, SceneSet, make_scenes, normalise, render_scene
from .metrics import auroc, centre_prior, deletion, pointing_game
from .scores import attention_maps, class_excitation, grad_cam, headline_maps, selectivity

__all__ = [
    "CLASSES",
    "Scene",
    "SceneSet",
    "WeightsError",
    "ZooNet",
    "attention_maps",
    "auroc",
    "centre_prior",
    "deletion",
    "pointing_game",
    "available",
    "class_excitation",
    "grad_cam",
    "headline_maps",
    "load_model",
    "make_scenes",
    "normalise",
    "render_scene",
    "selectivity",
]
