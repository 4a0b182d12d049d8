"""The zoo's backbone: one small CNN into which any registered block is inserted through the registry.

``ZooNet`` for 64x64 scenes: four stages of widths (16, 32, 64, 128), each a stride-2 3x3 convolution and
a 3x3 convolution (both followed by BatchNorm and ReLU), then global average pooling and a linear
classifier. The block goes into stages 2, 3 and 4 (maps of 16x16, 8x8 and 4x4), in one of three ways,
chosen from the block's signature and output:

* gating blocks ``Block(channels)`` (SE, CBAM, GC, Non-local, ...): after the stage, ``x = block(x)``;
* convolution-replacing blocks ``Block(in_channels, out_channels, ...)`` (dynamic convolution, DKA,
  DyCAConv with ``kernel_size=3``; SK with its own 3x3 and dilated 3x3 branches): they replace the
  stage's second 3x3 convolution (the stage's BN and ReLU stay after it, also after blocks that end in
  their own normalisation);
* blocks whose output is a set of vectors ``(B, K, C)`` (Encoding): only in the head, on the last
  stage's map, followed by flattening, BatchNorm1d and the classifier (Deep TEN's head).

``ZooNet(None)`` is the baseline without attention.
"""

from __future__ import annotations

import inspect
import json

import torch
from torch import nn

import attnlib

from .fashion import CLASSES

WIDTHS = (16, 32, 64, 128)
#: stages (0-based) that receive the block
BLOCK_STAGES = (1, 2, 3)
#: zoo-specific constructor arguments (everything else is the paper's default)
BLOCK_KWARGS: dict[str, dict] = {
    # maps are at most 16x16, so keep every key position (the paper sub-samples by 2x2 on larger maps)
    "nonlocal": {"sub_sample": False},
}
#: zoo-specific stages for blocks that are not meant to sit after every stage
STAGES_FOR: dict[str, tuple[int, ...]] = {
    # CFPNet places one EVC on one pyramid level; here one EVC on the 8x8 map (64 channels). At every
    # stage its 7x7 stem on 128 channels alone would exceed the 3 MB weights budget.
    "evc": (2,),
}


#: zoo models that are a registered block with other options (a pitfall's fix, trained beside the
#: block): name -> (block, constructor arguments on top of BLOCK_KWARGS)
VARIANTS: dict[str, tuple[str, dict]] = {
    "encoding+positive_s": ("encoding", {"positive_scale": True}),
    "lvc+positive_s": ("lvc", {"positive_scale": True}),
}


def model_spec(name: str) -> tuple[str | None, dict | None]:
    """``(block, block_kwargs)`` of zoo model ``name``: ``"baseline"`` -> ``(None, None)``, a registered
    block -> ``(name, None)`` (its defaults), a :data:`VARIANTS` entry -> its block and arguments."""
    if name == "baseline":
        return None, None
    if name in VARIANTS:
        block, kw = VARIANTS[name]
        return block, {**BLOCK_KWARGS.get(block, {}), **kw}
    attnlib.block_info(name)  # raises ValueError naming the known blocks
    return name, None


def resolved_kwargs(name: str, kwargs: dict) -> dict:
    """``kwargs`` completed with the defaults of the block's keyword-only arguments, as JSON values.

    A card records these, so saved weights keep their configuration when a block's default changes."""
    params = inspect.signature(attnlib.block_info(name).cls.__init__).parameters
    unknown = sorted(set(kwargs) - {n for n, p in params.items() if p.kind == p.KEYWORD_ONLY})
    if unknown:
        raise ValueError(f"ZooNet: block {name!r} has no keyword argument(s) {unknown}")
    full = {n: p.default for n, p in params.items() if p.kind == p.KEYWORD_ONLY and p.default is not p.empty}
    full.update(kwargs)
    return json.loads(json.dumps(full))  # tuples -> lists, as stored in a card


def _constructor_kwargs(name: str, kwargs: dict) -> dict:
    """JSON values back to the types of the block's defaults (lists -> tuples)."""
    params = inspect.signature(attnlib.block_info(name).cls.__init__).parameters
    out = {}
    for k, v in kwargs.items():
        default = params[k].default if k in params else None
        out[k] = tuple(v) if isinstance(v, list) and isinstance(default, tuple) else v
    return out


def block_kind(name: str) -> str:
    """``"conv"`` for blocks built like ``nn.Conv2d`` (``in_channels, out_channels, kernel_size``),
    ``"head"`` for blocks whose output is ``(B, K, C)``, else ``"gate"``."""
    cls = attnlib.block_info(name).cls
    params = list(inspect.signature(cls.__init__).parameters)[1:4]
    if params[:2] == ["in_channels", "out_channels"]:
        return "conv"
    probe = cls(64, **BLOCK_KWARGS.get(name, {})).eval()
    with torch.no_grad():
        out = probe(torch.zeros(1, 64, 4, 4))
    return "gate" if out.shape == (1, 64, 4, 4) else "head"


def _conv_block(name: str, width: int, kwargs: dict) -> nn.Module:
    params = inspect.signature(attnlib.block_info(name).cls.__init__).parameters
    if "kernel_size" in params:
        return attnlib.create_block(name, width, width, 3, **kwargs)
    return attnlib.create_block(name, width, width, **kwargs)  # SK: its branches fix their kernels


def _cbr(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class Stage(nn.Module):
    """``down`` (3x3 stride 2, BN, ReLU) -> ``conv`` (3x3 or a conv block) -> BN -> ReLU -> ``attn``."""

    def __init__(self, cin: int, cout: int, conv: nn.Module | None = None, attn: nn.Module | None = None):
        super().__init__()
        self.down = nn.Sequential(*_cbr(cin, cout, 2))
        self.conv = conv if conv is not None else nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.ReLU(inplace=True)
        self.attn = attn if attn is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn(self.conv(self.down(x))))
        return self.attn(x)


class ZooNet(nn.Module):
    """The zoo's classifier with ``block`` (a registry name, or ``None`` for the baseline) inserted.

    Args:
        block: registry name of the block, or ``None``.
        widths: channels of the four stages.
        stages: which stages (0-based) receive the block (gating and conv blocks); default
            :data:`BLOCK_STAGES`, or the block's entry in :data:`STAGES_FOR`.
        num_classes: number of classes (default: the scene classes).
        block_kwargs: constructor arguments for the block (default: :data:`BLOCK_KWARGS`); the model
            records them completed with the block's defaults (:func:`resolved_kwargs`).

    Shape:
        - Input: ``(B, 3, H, W)``, normalised images (``attnlib.zoo.scenes.normalise``).
        - Output: ``(B, num_classes)`` logits.

    Example:
        >>> import torch
        >>> from attnlib.zoo.model import ZooNet
        >>> ZooNet("se")(torch.randn(2, 3, 64, 64)).shape
        torch.Size([2, 7])
    """

    def __init__(self, block: str | None = None, *, widths=WIDTHS, stages=None,
                 num_classes: int = len(CLASSES), block_kwargs: dict | None = None):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if stages is None:
            stages = STAGES_FOR.get(block, BLOCK_STAGES)
        stages = tuple(int(s) for s in stages)
        if block is not None:
            attnlib.block_info(block)  # raises ValueError for unknown names
        if any(not 0 <= s < len(widths) for s in stages):
            raise ValueError(f"ZooNet: stages must be in [0, {len(widths)}), got {stages}")
        self.block = block
        self._stages_arg = stages
        self.widths = widths
        self.stages_with_block = stages if block is not None else ()
        self.num_classes = num_classes
        given = dict(BLOCK_KWARGS.get(block, {}) if block_kwargs is None else block_kwargs)
        self.block_kwargs = resolved_kwargs(block, given) if block is not None else {}
        self.kind = block_kind(block) if block is not None else None
        kw = _constructor_kwargs(block, self.block_kwargs) if block is not None else {}

        layers, cin = [], 3
        for i, w in enumerate(widths):
            use = block is not None and self.kind != "head" and i in stages
            conv = _conv_block(block, w, kw) if use and self.kind == "conv" else None
            attn = attnlib.create_block(block, w, **kw) if use and self.kind == "gate" else None
            layers.append(Stage(cin, w, conv, attn))
            cin = w
        self.stages = nn.ModuleList(layers)
        if self.kind == "head":
            self.stages_with_block = (len(widths) - 1,)
            self.encoding = attnlib.create_block(block, cin, **kw)
            with torch.no_grad():
                k = self.encoding.eval()(torch.zeros(2, cin, 4, 4)).shape[1]
            self.encoding.train()
            self.head_norm = nn.BatchNorm1d(k * cin)
            self.fc = nn.Linear(k * cin, num_classes)
        else:
            self.fc = nn.Linear(cin, num_classes)

    def config(self) -> dict:
        """The constructor arguments, as saved in a weights card. A block's softmax temperature is
        recorded at its current value (after training: the annealed one the weights are meant for)."""
        kwargs = dict(self.block_kwargs)
        if "temperature" in kwargs:
            temps = {float(m.temperature) for m in self.block_modules().values()}
            if len(temps) == 1:
                kwargs["temperature"] = temps.pop()
        return {"block": self.block, "widths": list(self.widths), "stages": list(self._stages_arg),
                "num_classes": self.num_classes, "block_kwargs": kwargs}

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's map ``(B, C_4, H/16, W/16)``."""
        for stage in self.stages:
            x = stage(x)
        return x

    def head(self, f: torch.Tensor) -> torch.Tensor:
        if self.kind == "head":
            e = self.encoding(f).flatten(1)
            return self.fc(self.head_norm(e))
        return self.fc(f.mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def block_modules(self) -> dict[str, nn.Module]:
        """``{module name: block}`` for every inserted block (not its sub-blocks), in stage order."""
        if self.block is None:
            return {}
        cls = attnlib.block_info(self.block).cls
        return {n: m for n, m in self.named_modules() if type(m) is cls}


def config_json(config: dict) -> str:
    return json.dumps(config, sort_keys=True)
