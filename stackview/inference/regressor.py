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
    context_px
        0: the model reads isolated windows (zero padding at their edges). Otherwise its input
        is the window with this many pixels of the image around it on every side, and only the
        trunk features of the window itself are pooled (:meth:`StackingRegressor.
        forward_normalised`): no feature it reads has seen an artificial border, so one trunk
        pass over a whole image reads every window at once with nearly the same numbers
        (what lies beyond the margin still matters: ~0.03 Å for ResNet-18, issue 19)
        (:mod:`stackview.inference.dense`). A multiple of the trunk's stride (ResNet: 32 px).
    window_px
        With context: the window's side (pixels), whose central trunk cells are pooled
        whatever margin the input has (training shows the model more than ``context_px`` so
        that what lies beyond it does not change the reading).
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
    context_px: int = 0
    window_px: int = 0

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
        if not (0 <= int(self.context_px) <= 512):
            raise UsageError(f"the context margin {self.context_px} px must be 0 to 512")
        object.__setattr__(self, "context_px", int(self.context_px))
        object.__setattr__(self, "window_px", int(self.window_px))
        if self.context_px and self.window_px < 8:
            raise UsageError("a model that reads context needs its window size (window_px)")

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


def split_backbone(backbone: nn.Module) -> tuple[nn.Module, nn.Module, int]:
    """(trunk, tail, stride): the convolutional trunk, the layer after its global pooling, and
    the trunk's total stride in pixels. Supports torchvision ResNets and the test backbone.

    The trunk and tail share the backbone's modules (no copies of the weights)."""
    if isinstance(backbone, TinyBackbone):
        layers = list(backbone.children())
        return nn.Sequential(*layers[:-3]), layers[-1], 8
    if all(hasattr(backbone, k) for k in ("conv1", "layer4", "fc", "maxpool")):
        trunk = nn.Sequential(backbone.conv1, backbone.bn1, backbone.relu, backbone.maxpool,
                              backbone.layer1, backbone.layer2, backbone.layer3, backbone.layer4)
        return trunk, backbone.fc, 32
    raise UsageError("reading with context (and the dense mode) needs a ResNet backbone")


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
        if spec.context_px:
            _, _, stride = self.split()
            if spec.context_px % stride or spec.window_px % stride:
                raise UsageError(f"the window ({spec.window_px} px) and the context margin "
                                 f"({spec.context_px} px) must be multiples of the trunk's "
                                 f"stride ({stride} px)")

    def split(self) -> tuple[nn.Module, nn.Module, int]:
        """(trunk, tail, stride) of the backbone (:func:`split_backbone`); made per call so
        that the shared modules are not registered twice."""
        return split_backbone(self.backbone)

    @property
    def window_cells(self) -> int:
        """The window's side in trunk cells (models that read context)."""
        stride = self.split()[2]
        return self.spec.window_px // stride

    def read_pooled(self, pooled: torch.Tensor) -> torch.Tensor:
        """Raw outputs from window-pooled trunk features (N, C) — the dense mode's last step."""
        _, tail, _ = self.split()
        return self.head(tail(pooled))

    def forward_normalised(self, x: torch.Tensor) -> torch.Tensor:
        """Raw network outputs (normalised labels, or invariant features).

        With a context margin the input is the window plus that margin on every side; only the
        trunk cells of the window are pooled."""
        if x.ndim == 3:
            x = x.unsqueeze(1)
        x = standardise(x)
        if not self.spec.context_px:
            return self.head(self.backbone(x))
        trunk, _, stride = self.split()
        if min(x.shape[-2:]) < self.spec.window_px + 2 * self.spec.context_px:
            raise UsageError(f"a model that reads {self.spec.context_px} px of context needs "
                             "its input to be the window plus that margin")
        feats = trunk(x)
        k = self.window_cells
        cy, cx = (feats.shape[-2] - k) // 2, (feats.shape[-1] - k) // 2
        return self.read_pooled(feats[..., cy:cy + k, cx:cx + k].mean(dim=(-2, -1)))

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
