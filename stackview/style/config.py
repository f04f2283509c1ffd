"""Configuration of a DRIT style model: network widths, image size, loss weights, optimiser.

:class:`StyleConfig` is a frozen dataclass validated once at construction; :data:`PRESETS` holds
the named configurations (``paper`` for a GPU, ``cpu`` for a few hours on a laptop-class CPU,
``tiny`` for tests). Plain Python only: no torch, no Qt.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from stackview.errors import UsageError


@dataclass(frozen=True)
class StyleConfig:
    """Everything that fixes a DRIT style model and its training.

    Network sizes follow DRIT (Lee et al., ECCV 2018) with ``width`` the number of channels of the
    first content-encoder layer (64 in DRIT); the content code has ``4 * width`` channels at 1/4 of
    the image resolution.

    Parameters
    ----------
    name
        Preset name, recorded in checkpoints and bundle cards.
    image_px
        Side of the square training patches, in pixels (a multiple of 8).
    width
        Base channel count of content encoders and generators (DRIT: 64).
    content_res_blocks
        Residual blocks per domain-specific content encoder (DRIT: 3); one more is shared.
    gen_res_blocks
        Residual blocks per generator after the shared one (DRIT: 3).
    attr_dim
        Length of the attribute (style) code (DRIT: 8).
    attr_width, attr_blocks
        Base channels and number of residual down-sampling blocks of the attribute encoders
        (DRIT: 64 and 4).
    dis_width, dis_layers, dis_scales
        Domain discriminators: base channels, stride-2 layers per scale and number of scales
        (DRIT: 64, 4 and 3).
    spectral_norm
        Spectral normalisation in the domain discriminators.
    random_discriminators
        Separate domain discriminators for images made with randomly sampled attributes (as
        DRIT's ``disA2``/``disB2``); when False the main discriminators judge them too.
    content_consistency
        Use the paper's Eq. (1) loss L1(u, y) + L1(v, x) (prong III); False for the ablation.
    lambda_*
        Loss weights: adversarial (``adv``), content adversarial (``content_adv``), cross-cycle
        (``cycle``), self reconstruction (``self_recon``), KL of attributes (``kl``), L2 of
        content codes (``content_l2``), latent regression (``latent``), content consistency
        (``consistency``), structure consistency (``structure``, default 0: off).
    structure_blur_A
        Gaussian sigma (Å) of the low-pass filter of the structure-consistency loss
        (:func:`stackview.style.losses.structure_consistency`).
    lr, beta1, beta2
        Adam learning rate and betas (DRIT: 1e-4, 0.5, 0.999).
    batch_size
        Images per domain per step (paper: 2).
    iterations
        Generator/encoder updates in a full training run.
    decay_start
        Fraction of ``iterations`` after which the learning rate decays linearly to 0
        (paper: 600 of 3000 epochs = 0.2).
    content_dis_steps
        Extra content-discriminator updates per iteration (DRIT updates it on 2 of every 3
        batches: 2).
    rotation_deg, crop_fraction, flip_probability
        Affine augmentation (prong II): rotation in [-rotation_deg, +rotation_deg], square crops of
        ``crop_fraction`` of the view side resized to ``image_px``, flips with this probability.
    sampling_A
        Sampling of the model's images in Å/px; set from the data when training starts.
    """

    name: str = "custom"
    image_px: int = 128
    width: int = 16
    content_res_blocks: int = 1
    gen_res_blocks: int = 1
    attr_dim: int = 8
    attr_width: int = 16
    attr_blocks: int = 3
    dis_width: int = 16
    dis_layers: int = 4
    dis_scales: int = 3
    spectral_norm: bool = True
    random_discriminators: bool = True
    content_consistency: bool = True
    lambda_adv: float = 1.0
    lambda_content_adv: float = 1.0
    lambda_cycle: float = 10.0
    lambda_self_recon: float = 10.0
    lambda_kl: float = 0.01
    lambda_content_l2: float = 0.01
    lambda_latent: float = 10.0
    lambda_consistency: float = 1.0
    lambda_structure: float = 0.0
    structure_blur_A: float = 0.3
    lr: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.999
    batch_size: int = 2
    iterations: int = 5000
    decay_start: float = 0.2
    content_dis_steps: int = 2
    rotation_deg: float = 45.0
    crop_fraction: tuple[float, float] = (0.45, 0.60)
    flip_probability: float = 0.5
    sampling_A: float | None = None

    def __post_init__(self) -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise UsageError(message)

        need(
            self.image_px >= 16 and self.image_px % 8 == 0,
            f"image_px must be a multiple of 8 and at least 16, not {self.image_px}",
        )
        need(
            self.width >= 1 and self.attr_width >= 1 and self.dis_width >= 1,
            "network widths must be positive",
        )
        need(
            self.content_res_blocks >= 0 and self.gen_res_blocks >= 0,
            "residual block counts must not be negative",
        )
        need(self.attr_dim >= 1, "attr_dim must be at least 1")
        need(self.attr_blocks >= 1, "attr_blocks must be at least 1")
        need(1 <= self.dis_layers <= 8, "dis_layers must lie between 1 and 8")
        need(1 <= self.dis_scales <= 5, "dis_scales must lie between 1 and 5")
        need(
            self.image_px // 2 ** (self.dis_scales + self.dis_layers - 2) >= 2,
            f"image_px {self.image_px} is too small for {self.dis_scales} discriminator scales "
            f"of {self.dis_layers} layers",
        )
        need(
            self.lr > 0 and 0 <= self.beta1 < 1 and 0 <= self.beta2 < 1,
            "lr must be positive and the Adam betas in [0, 1)",
        )
        need(self.batch_size >= 1, "batch_size must be at least 1")
        need(self.iterations >= 1, "iterations must be at least 1")
        need(0 <= self.decay_start <= 1, "decay_start must lie between 0 and 1")
        need(self.content_dis_steps >= 0, "content_dis_steps must not be negative")
        need(0 <= self.rotation_deg <= 180, "rotation_deg must lie between 0 and 180")
        lo, hi = self.crop_fraction
        need(0 < lo <= hi <= 1, "crop_fraction must be (low, high) with 0 < low <= high <= 1")
        need(0 <= self.flip_probability <= 1, "flip_probability must lie between 0 and 1")
        need(self.sampling_A is None or self.sampling_A > 0, "sampling_A must be positive")
        need(0 < self.structure_blur_A <= 5, "structure_blur_A must lie in (0, 5] Å")
        flags = {"lambda_consistency": "the content-consistency weight (--consistency-weight)",
                 "lambda_structure": "the structure-consistency weight (--structure-weight)"}
        for field in dataclasses.fields(self):
            if field.name.startswith("lambda_"):
                name = flags.get(field.name, field.name)
                need(getattr(self, field.name) >= 0, f"{name} must not be negative")

    def replace(self, **changes) -> StyleConfig:
        """A copy with some fields changed (validated again)."""
        if "crop_fraction" in changes:
            changes["crop_fraction"] = tuple(changes["crop_fraction"])
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """JSON-friendly dictionary of all fields."""
        data = dataclasses.asdict(self)
        data["crop_fraction"] = list(self.crop_fraction)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> StyleConfig:
        """Inverse of :meth:`to_dict`; unknown keys are refused."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise UsageError(f"unknown style configuration keys: {', '.join(sorted(unknown))}")
        data = dict(data)
        if "crop_fraction" in data:
            data["crop_fraction"] = tuple(data["crop_fraction"])
        return cls(**data)


#: Named configurations. ``paper`` is DRIT's official network at the paper's 1024² training
#: size (a GPU job); ``cpu`` is sized to train in under two hours on one core of a 2-core CPU
#: (the bundled ReS2 style: 3000 iterations, 101 min) and to translate a 1024² image in about
#: 2 s; ``tiny`` exists for tests.
PRESETS: dict[str, StyleConfig] = {
    "paper": StyleConfig(
        name="paper",
        image_px=1024,
        width=64,
        content_res_blocks=3,
        gen_res_blocks=3,
        attr_width=64,
        attr_blocks=4,
        dis_width=64,
        dis_layers=4,
        dis_scales=3,
        spectral_norm=False,
        iterations=60000,
        content_dis_steps=2,
    ),
    "cpu": StyleConfig(name="cpu", iterations=3000),
    "tiny": StyleConfig(
        name="tiny",
        image_px=32,
        width=4,
        content_res_blocks=1,
        gen_res_blocks=1,
        attr_dim=4,
        attr_width=4,
        attr_blocks=2,
        dis_width=4,
        dis_layers=2,
        dis_scales=2,
        iterations=5,
        content_dis_steps=1,
    ),
}


def get_preset(name: str) -> StyleConfig:
    """The preset called ``name`` (``paper``, ``cpu`` or ``tiny``)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise UsageError(
            f"unknown style configuration '{name}'; choose one of {', '.join(PRESETS)}"
        ) from None
