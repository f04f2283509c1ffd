"""The stacking regressor: a torchvision backbone with a 1-channel stem and the paper's head.

:class:`StackingRegressor` = per-image standardisation → torchvision backbone (``resnet50`` by
default, ``weights=None``; its first 3-channel convolution replaced by a 1-channel one) → the
paper's head ``[1000 → 512 → n]`` (Linear, ReLU, Linear) → label de-normalisation. The network's
raw outputs are normalised labels ``(y − offset) / scale`` with ``offset``/``scale`` the centre and
half-width of the canonical label domain; :meth:`StackingRegressor.forward` returns labels in
physical units (Å for slip, degrees for twist), which is what the symmetric losses in
:mod:`stackview.inference.loss` and the label classes expect.

:class:`RegressorSpec` is the frozen, JSON-serialisable description (backbone, task, material,
layers, output normalisation) that a checkpoint or a model bundle stores beside its weights; the
model is rebuilt from it, never unpickled. Torch and torchvision are imported here; no Qt.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from stackview.errors import UsageError
from stackview.core.labels import SlipLabels, TwistLabels

#: backbones known to work with the 1-channel stem (any torchvision classification model whose
#: first layer is a 3-channel Conv2d works; these are the ones tested and benchmarked)
RECOMMENDED_BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnext50_32x4d")
TASKS = ("slip", "twist")
#: ``direct``: the paper's head, regressing the labels; ``invariant``: slip (bi- or trilayer) or
#: twist through symmetry-invariant features (:mod:`stackview.inference.invariant`)
HEADS = ("direct", "invariant")


@dataclass(frozen=True)
class RegressorSpec:
    """What fixes a regressor's architecture and output convention.

    Parameters
    ----------
    backbone
        torchvision model name (``resnet50`` as in the paper; ``resnet18`` for CPUs).
    task
        ``"slip"`` or ``"twist"``.
    material
        Material name (label convention: its reduced cell).
    layers
        Number of layers (2 or 3 for slip, 2 for twist).
    family
        Slip bilayers: ``"parallel"``, ``"antiparallel"`` or ``"both"`` (the model also reads
        the stacking family; :mod:`stackview.core.stacking`).
    label_offset, label_scale
        Per-output de-normalisation: ``label = offset + scale · raw``.
    hidden
        Width of the head's hidden layer (paper: 512).
    head
        ``"direct"`` (the paper: outputs are the normalised labels) or ``"invariant"`` (outputs
        are symmetry-invariant features of the slip or twist, decoded by table search and
        Gauss–Newton; see :mod:`stackview.inference.invariant`).
    """

    backbone: str = "resnet50"
    task: str = "slip"
    material: str = "ReS2"
    layers: int = 2
    family: str = "parallel"
    label_offset: tuple[float, ...] = ()
    label_scale: tuple[float, ...] = ()
    hidden: int = 512
    head: str = "direct"

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise UsageError(f"the task must be 'slip' or 'twist', not {self.task!r}")
        if self.head not in HEADS:
            raise UsageError(f"the head must be 'direct' or 'invariant', not {self.head!r}")
        if self.task == "twist" and self.layers != 2:
            raise UsageError("twist models are for bilayers (layers = 2)")
        if self.task == "slip" and self.layers not in (2, 3):
            raise UsageError(f"slip models need 2 or 3 layers, not {self.layers}")
        if not self.label_offset:
            offset, scale = default_normalisation(self.label_space())
            object.__setattr__(self, "label_offset", offset)
            object.__setattr__(self, "label_scale", scale)
        object.__setattr__(self, "label_offset", tuple(float(v) for v in self.label_offset))
        object.__setattr__(self, "label_scale", tuple(float(v) for v in self.label_scale))
        if len(self.label_offset) != self.n_outputs or len(self.label_scale) != self.n_outputs:
            raise UsageError("label normalisation must give one offset and scale per output")
        if self.head == "direct" and self.family == "both":
            raise UsageError("a direct head cannot read the stacking family; use the invariant "
                             "head")
        if self.hidden < 1:
            raise UsageError("the head's hidden width must be positive")

    @property
    def n_outputs(self) -> int:
        if self.task == "twist":
            return 1
        return 2 * (self.layers - 1) + (1 if self.family == "both" else 0)

    @property
    def n_raw(self) -> int:
        """Width of the network's last layer (labels, or invariant features)."""
        if self.head == "invariant":
            from stackview.inference.invariant import n_label_features

            return n_label_features(self.label_space())
        return self.n_outputs

    def label_space(self) -> SlipLabels | TwistLabels:
        """The label class (canonical domain, symmetric distance) of this model."""
        if self.task == "twist":
            return TwistLabels(self.material)
        return SlipLabels(self.material, layers=self.layers, family=self.family)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self) | {
            "label_offset": list(self.label_offset), "label_scale": list(self.label_scale),
        }

    @classmethod
    def from_dict(cls, data: dict) -> RegressorSpec:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise UsageError(f"unknown regressor settings: {', '.join(sorted(unknown))}")
        kwargs = dict(data)
        for key in ("label_offset", "label_scale"):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)


def default_normalisation(space: SlipLabels | TwistLabels) -> tuple[tuple, tuple]:
    """Centre and half-width of the canonical label domain, per output."""
    if isinstance(space, TwistLabels):
        lo, hi = space.domain_deg
        return ((lo + hi) / 2,), ((hi - lo) / 2,)
    bounds = space.domain_bounds_A()
    return (tuple((lo + hi) / 2 for lo, hi in bounds), tuple((hi - lo) / 2 for lo, hi in bounds))


def _replace_first_conv(model: nn.Module, in_channels: int = 1) -> None:
    """Swap the first 3-channel ``Conv2d`` of a torchvision model for a ``in_channels`` one."""
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.Conv2d) and child.in_channels == 3:
                conv = nn.Conv2d(
                    in_channels, child.out_channels, child.kernel_size, child.stride,
                    child.padding, child.dilation, child.groups, child.bias is not None,
                    child.padding_mode,
                )
                setattr(parent, name, conv)
                return
    raise UsageError("the backbone has no 3-channel input convolution to replace")


class TinyBackbone(nn.Sequential):
    """A ~30k-parameter CNN with 1000 outputs, for tests and smoke runs only (``"tiny"``)."""

    def __init__(self) -> None:
        layers: list[nn.Module] = []
        channels = (1, 8, 16, 32)
        for cin, cout in zip(channels[:-1], channels[1:], strict=True):
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels[-1], 1000)]
        super().__init__(*layers)


def build_backbone(name: str) -> nn.Module:
    """A torchvision classification model (``weights=None``, 1000 outputs, 1-channel input).

    ``"tiny"`` gives :class:`TinyBackbone` (tests and smoke runs; not for real models).
    """
    if name == "tiny":
        return TinyBackbone()
    import torchvision

    try:
        available = set(torchvision.models.list_models(module=torchvision.models))
    except TypeError:  # older torchvision
        available = set(torchvision.models.list_models())
    if name not in available:
        raise UsageError(
            f"unknown backbone {name!r}; use a torchvision classification model such as "
            + ", ".join(RECOMMENDED_BACKBONES)
        )
    model = torchvision.models.get_model(name, weights=None, num_classes=1000)
    _replace_first_conv(model, 1)
    return model


def standardise(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Zero mean, unit standard deviation per image (B, 1, H, W)."""
    mean = x.mean(dim=(-1, -2), keepdim=True)
    std = x.std(dim=(-1, -2), keepdim=True)
    return (x - mean) / (std + eps)


class StackingRegressor(nn.Module):
    """Backbone + head ``[1000 → 512 → n]``; forward returns labels in Å or degrees.

    Input: (B, 1, H, W) float images at the model's sampling (any intensity scale: each image is
    standardised first). Output: (B, n) labels (not folded into the canonical domain; use the
    label space's ``canonical`` for display).
    """

    def __init__(self, spec: RegressorSpec) -> None:
        super().__init__()
        self.spec = spec
        self.backbone = build_backbone(spec.backbone)
        self.head = nn.Sequential(
            nn.Linear(1000, spec.hidden), nn.ReLU(inplace=True),
            nn.Linear(spec.hidden, spec.n_raw),
        )
        self.register_buffer("label_offset", torch.tensor(spec.label_offset, dtype=torch.float32))
        self.register_buffer("label_scale", torch.tensor(spec.label_scale, dtype=torch.float32))
        self.decoder = None
        if spec.head == "invariant":
            from stackview.inference.invariant import make_decoder

            # not saved with the weights: rebuilt from the spec
            self.decoder = make_decoder(spec.label_space())

    def forward_normalised(self, x: torch.Tensor) -> torch.Tensor:
        """Raw network outputs (normalised labels, or invariant features)."""
        if x.ndim == 3:
            x = x.unsqueeze(1)
        return self.head(self.backbone(standardise(x)))

    def decode(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Raw outputs → (labels in Å or degrees, feature residual or None for direct heads)."""
        raw = raw.float()
        if self.decoder is not None:
            return self.decoder(raw)
        return self.label_offset + self.label_scale * raw, None

    def forward(self, x: torch.Tensor, raw: bool = False) -> torch.Tensor:
        """Labels (B, n) in physical units; with ``raw=True`` the undecoded outputs (training)."""
        out = self.forward_normalised(x)
        return out if raw else self.decode(out)[0]


def build_regressor(spec: RegressorSpec, seed: int | None = None) -> StackingRegressor:
    """A freshly initialised regressor (deterministic when ``seed`` is given)."""
    if seed is None:
        return StackingRegressor(spec)
    devices = []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        return StackingRegressor(spec)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
