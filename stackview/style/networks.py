"""DRIT networks (Lee et al., ECCV 2018) for one-channel images, sized by a :class:`StyleConfig`.

Built from the paper's description and the published architecture:

- :class:`ContentEncoders` — one branch per domain (7×7 conv, two stride-2 convs with instance
  norm, residual blocks) and a *shared* last residual block, followed during training by
  Gaussian noise on the content code; the code has ``4 * width`` channels at 1/4 resolution;
- :class:`AttributeEncoder` — per domain, residual down-sampling blocks, global pooling and two
  linear heads giving the mean and log-variance of an ``attr_dim``-d attribute (style) code;
- :class:`Generators` — a shared first residual block, then per domain residual blocks and two
  transposed-conv up-samplings with layer norm; the attribute code is tiled and concatenated to
  the features before each stage (DRIT's ``G_concat``); tanh output in [-1, 1];
- :class:`ContentDiscriminator` — tells domain A's content codes from B's;
- :class:`MultiScaleDiscriminator` — PatchGAN discriminators on the image at several scales.

:class:`DRIT` holds them all. Only torch here; no Qt.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stackview.style.config import StyleConfig

#: total down-sampling of the content code relative to the image
CONTENT_STRIDE = 4


def _conv(
    n_in: int, n_out: int, kernel: int, stride: int = 1, pad: int = 0, spectral: bool = False
) -> list[nn.Module]:
    conv = nn.Conv2d(n_in, n_out, kernel, stride, padding=0, bias=True)
    if spectral:
        conv = nn.utils.parametrizations.spectral_norm(conv)
    return ([nn.ReflectionPad2d(pad)] if pad else []) + [conv]


class _StatNorm(nn.Module):
    """Base of the normalisation layers: per-sample statistics, which can be *recorded* on one
    image and *frozen* for others (seamless tiled translation: every tile is normalised with
    the same statistics, so the network is translation-equivariant across tiles)."""

    dims: tuple[int, ...] = (2, 3)

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.recording = False
        self.frozen: tuple[torch.Tensor, torch.Tensor] | None = None

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        if self.frozen is not None:
            mean, var = self.frozen
            return (x - mean) * torch.rsqrt(var + self.eps)
        if self.recording:
            var, mean = torch.var_mean(x, dim=self.dims, keepdim=True, correction=0)
            self.frozen_candidate = (mean.mean(0, keepdim=True), var.mean(0, keepdim=True))
            return (x - mean) * torch.rsqrt(var + self.eps)
        return self._fast(x)

    def _fast(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - overridden
        raise NotImplementedError


class InstanceNorm(_StatNorm):
    """Instance norm without affine parameters (as ``nn.InstanceNorm2d(affine=False)``)."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__(eps)
        self.channels = channels

    def _fast(self, x: torch.Tensor) -> torch.Tensor:
        return F.instance_norm(x, eps=self.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._normalise(x)


class LayerNorm(_StatNorm):
    """Layer norm over (C, H, W) of each sample with a per-channel affine (MUNIT/DRIT style)."""

    dims = (1, 2, 3)

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__(eps)
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def _fast(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, x.shape[1:], eps=self.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._normalise(x)
        return x * self.gamma[None, :, None, None] + self.beta[None, :, None, None]


def record_statistics(model: nn.Module) -> None:
    """Let the next forward pass record every normalisation layer's statistics."""
    for m in model.modules():
        if isinstance(m, _StatNorm):
            m.frozen, m.recording = None, True


def freeze_statistics(model: nn.Module) -> None:
    """Use the recorded statistics in every normalisation layer from now on."""
    for m in model.modules():
        if isinstance(m, _StatNorm):
            m.recording = False
            m.frozen = getattr(m, "frozen_candidate", None)


def release_statistics(model: nn.Module) -> None:
    """Back to per-image statistics (training and whole-image translation)."""
    for m in model.modules():
        if isinstance(m, _StatNorm):
            m.recording, m.frozen = False, None
            m.__dict__.pop("frozen_candidate", None)


class ResBlock(nn.Module):
    """Residual block: (reflect-pad, 3×3 conv, instance norm, ReLU) ×2 without the last ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_conv(channels, channels, 3, 1, 1),
            InstanceNorm(channels),
            nn.ReLU(True),
            *_conv(channels, channels, 3, 1, 1),
            InstanceNorm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class GaussianNoise(nn.Module):
    """Adds unit Gaussian noise in training mode only (DRIT's noise on content codes)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.randn_like(x) if self.training else x


class ContentEncoders(nn.Module):
    """Per-domain content encoders whose last residual block is shared."""

    def __init__(self, cfg: StyleConfig) -> None:
        super().__init__()
        w = cfg.width

        def branch() -> nn.Sequential:
            return nn.Sequential(
                *_conv(1, w, 7, 1, 3),
                nn.LeakyReLU(0.2, True),
                *_conv(w, 2 * w, 3, 2, 1),
                InstanceNorm(2 * w),
                nn.ReLU(True),
                *_conv(2 * w, 4 * w, 3, 2, 1),
                InstanceNorm(4 * w),
                nn.ReLU(True),
                *[ResBlock(4 * w) for _ in range(cfg.content_res_blocks)],
            )

        self.branch_a = branch()
        self.branch_b = branch()
        self.shared = ResBlock(4 * w)
        self.noise = GaussianNoise()

    @property
    def channels(self) -> int:
        return self.shared.body[1].out_channels

    def encode(self, x: torch.Tensor, domain: str) -> torch.Tensor:
        """Content code of images ``x`` (B, 1, H, W) from domain ``"a"`` or ``"b"``."""
        branch = self.branch_a if domain == "a" else self.branch_b
        return self.noise(self.shared(branch(x)))


class _DownBlock(nn.Module):
    """DRIT's BasicBlock: LeakyReLU, 3×3 conv, LeakyReLU, 3×3 conv + mean-pool; pooled shortcut."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.LeakyReLU(0.2),
            *_conv(n_in, n_in, 3, 1, 1),
            nn.LeakyReLU(0.2),
            *_conv(n_in, n_out, 3, 1, 1),
            nn.AvgPool2d(2),
        )
        self.shortcut = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(n_in, n_out, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


class AttributeEncoder(nn.Module):
    """Attribute (style) encoder of one domain: image → (mean, log-variance) of the code."""

    def __init__(self, cfg: StyleConfig) -> None:
        super().__init__()
        w, max_mult = cfg.attr_width, 4
        layers: list[nn.Module] = [*_conv(1, w, 4, 2, 1)]
        ch = w
        for i in range(1, cfg.attr_blocks):
            out = w * min(max_mult, i + 1)
            layers.append(_DownBlock(ch, out))
            ch = out
        layers += [nn.LeakyReLU(0.2, True), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        self.mu = nn.Linear(ch, cfg.attr_dim)
        self.logvar = nn.Linear(ch, cfg.attr_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return self.mu(h), self.logvar(h)


def _up(n_in: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(n_in, n_out, 3, 2, 1, output_padding=1),
        LayerNorm(n_out),
        nn.ReLU(True),
    )


class _GeneratorBranch(nn.Module):
    def __init__(self, content_ch: int, cfg: StyleConfig) -> None:
        super().__init__()
        nz = cfg.attr_dim
        ch = content_ch + nz
        self.res = nn.Sequential(*[ResBlock(ch) for _ in range(cfg.gen_res_blocks)])
        self.up1 = _up(ch, ch // 2)
        ch = ch // 2 + nz
        self.up2 = _up(ch, ch // 2)
        ch = ch // 2 + nz
        # DRIT's last layer is a 1×1 ConvTranspose2d, which is the same map as a 1×1 Conv2d;
        # the latter is several times faster on CPUs (oneDNN)
        self.out = nn.Sequential(nn.Conv2d(ch, 1, 1), nn.Tanh())

    @staticmethod
    def _cat(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, z[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])], 1)

    def forward(self, content: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        x = self.res(self._cat(content, z))
        x = self.up1(x)
        x = self.up2(self._cat(x, z))
        return self.out(self._cat(x, z))


class Generators(nn.Module):
    """Attribute-conditioned generators of both domains with a shared first residual block."""

    def __init__(self, cfg: StyleConfig) -> None:
        super().__init__()
        ch = 4 * cfg.width
        self.shared = ResBlock(ch)
        self.branch_a = _GeneratorBranch(ch, cfg)
        self.branch_b = _GeneratorBranch(ch, cfg)

    def decode(self, content: torch.Tensor, z: torch.Tensor, domain: str) -> torch.Tensor:
        """Image in [-1, 1] of domain ``"a"`` or ``"b"`` from a content code and attributes."""
        branch = self.branch_a if domain == "a" else self.branch_b
        return branch(self.shared(content), z)


class ContentDiscriminator(nn.Module):
    """Classifies content codes as coming from domain A (logit > 0) or B."""

    def __init__(self, cfg: StyleConfig) -> None:
        super().__init__()
        ch = 4 * cfg.width
        layers: list[nn.Module] = []
        for _ in range(3):  # zero padding and no norm: the code may be only a few pixels wide
            layers += [nn.Conv2d(ch, ch, 5, 2, 2), nn.LeakyReLU(0.2, True)]
        layers += [nn.AdaptiveAvgPool2d(1), nn.Conv2d(ch, 1, 1), nn.Flatten()]
        self.body = nn.Sequential(*layers)

    def forward(self, content: torch.Tensor) -> torch.Tensor:
        return self.body(content)[:, 0]


class MultiScaleDiscriminator(nn.Module):
    """PatchGAN discriminators applied to the image and its 2×, 4×, … down-sampled copies."""

    def __init__(self, cfg: StyleConfig) -> None:
        super().__init__()

        def single() -> nn.Sequential:
            ch = cfg.dis_width
            layers = [*_conv(1, ch, 4, 2, 1, cfg.spectral_norm), nn.LeakyReLU(0.2, True)]
            for _ in range(1, cfg.dis_layers):
                layers += [*_conv(ch, 2 * ch, 4, 2, 1, cfg.spectral_norm), nn.LeakyReLU(0.2, True)]
                ch *= 2
            layers.append(nn.Conv2d(ch, 1, 1))
            return nn.Sequential(*layers)

        self.scales = nn.ModuleList(single() for _ in range(cfg.dis_scales))
        self.down = nn.AvgPool2d(3, 2, 1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for i, dis in enumerate(self.scales):
            if i:
                x = self.down(x)
            outs.append(dis(x))
        return outs


def receptive_radius_px(cfg: StyleConfig) -> int:
    """Receptive-field radius (pixels) of content encoder + generator, image to image.

    7×7 conv (3), two stride-2 3×3 convs (1 + 2), residual blocks at 1/4 resolution (two 3×3
    convs: 8 px each; domain blocks, the shared encoder block, the shared generator block and
    the generator's), two transposed 3×3 convs (4 + 2).
    """
    blocks = cfg.content_res_blocks + 1 + 1 + cfg.gen_res_blocks
    return 3 + 1 + 2 + 8 * blocks + 4 + 2


def init_weights(module: nn.Module) -> None:
    """DRIT's initialisation: conv and linear weights N(0, 0.02), biases 0."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
        weight = getattr(module, "parametrizations", None)
        weight = module.parametrizations.weight.original if weight is not None else module.weight
        nn.init.normal_(weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class DRIT(nn.Module):
    """All DRIT networks (``discriminators=False``: only what a style bundle needs)."""

    #: sub-modules saved in a style bundle (no discriminators)
    translator_modules = ("content", "attr_a", "attr_b", "gen")

    def __init__(self, cfg: StyleConfig, discriminators: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        self.content = ContentEncoders(cfg)
        self.attr_a = AttributeEncoder(cfg)
        self.attr_b = AttributeEncoder(cfg)
        self.gen = Generators(cfg)
        if not discriminators:  # a translator (style bundle): encoders and generators only
            self.apply(init_weights)
            return
        self.dis_a = MultiScaleDiscriminator(cfg)
        self.dis_b = MultiScaleDiscriminator(cfg)
        if cfg.random_discriminators:
            self.dis_a2 = MultiScaleDiscriminator(cfg)
            self.dis_b2 = MultiScaleDiscriminator(cfg)
        self.dis_content = ContentDiscriminator(cfg)
        self.apply(init_weights)

    # parameter groups -----------------------------------------------------------------------
    def generator_parameters(self) -> list[nn.Parameter]:
        """Encoders and generators (updated by the generator optimiser)."""
        return [
            p for m in (self.content, self.attr_a, self.attr_b, self.gen) for p in m.parameters()
        ]

    def discriminator_parameters(self) -> list[nn.Parameter]:
        """Domain discriminators (incl. the random-attribute ones)."""
        mods = [self.dis_a, self.dis_b]
        if self.cfg.random_discriminators:
            mods += [self.dis_a2, self.dis_b2]
        return [p for m in mods for p in m.parameters()]

    def random_discriminator(self, domain: str) -> MultiScaleDiscriminator:
        if self.cfg.random_discriminators:
            return self.dis_a2 if domain == "a" else self.dis_b2
        return self.dis_a if domain == "a" else self.dis_b

    # translation ----------------------------------------------------------------------------
    def encode_attr(self, x: torch.Tensor, domain: str) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self.attr_a if domain == "a" else self.attr_b
        return enc(x)

    def translate(self, x: torch.Tensor, z: torch.Tensor, source: str = "a") -> torch.Tensor:
        """Images ``x`` in [-1, 1] of domain ``source`` rendered in the other domain with
        attributes ``z`` (B, attr_dim)."""
        target = "b" if source == "a" else "a"
        return self.gen.decode(self.content.encode(x, source), z, target)

    def translator_state_dict(self) -> dict[str, torch.Tensor]:
        """Weights of :attr:`translator_modules` only (no discriminators)."""
        return {
            k: v
            for k, v in self.state_dict().items()
            if k.split(".", 1)[0] in self.translator_modules
        }
