"""DRIT losses and the paper's content-consistency loss, as plain functions on tensors.

:func:`generator_step_losses` runs DRIT's forward pass for one batch of simulated (domain A,
``x``) and experimental (domain B, ``y``) images and returns every generator-side loss term;
:func:`discriminator_losses` and :func:`content_discriminator_loss` give the discriminators'
losses. Adversarial losses are DRIT's (binary cross-entropy on logits; the content adversary
pushes the content discriminator towards 0.5). Weights come from the :class:`StyleConfig`.

Latent regression (DRIT's ``loss_z_L1``): an image generated from a random attribute code
``z`` must give back ``z`` when re-encoded, L1 × ``lambda_latent``. As in DRIT its gradient is
meant for the content encoders and generators only (the attribute encoder must not learn to
cheat), so those terms are returned separately (``alone``) and the trainer routes their
gradients explicitly — unlike the official release, where this loss never reaches any weight.
The paper's Eq. (1), ``L1(u, y) + L1(v, x)`` with ``u`` the generated simulation and ``v`` the
generated experimental image, is ``consistency``. Only torch here; no Qt.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from stackview.style.config import StyleConfig
from stackview.style.networks import DRIT


def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference."""
    return torch.mean(torch.abs(a - b))


def bce_logits(logits: torch.Tensor, target: float) -> torch.Tensor:
    """Binary cross-entropy of logits against a constant target (1 real, 0 fake, 0.5 content)."""
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def adversarial(outputs: list[torch.Tensor], target: float) -> torch.Tensor:
    """BCE summed over the scales of a multi-scale discriminator (DRIT sums them)."""
    return sum(bce_logits(o, target) for o in outputs)


def kl_loss(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL divergence of N(mu, exp(logvar)) from N(0, 1), summed over code dims, batch mean."""
    return 0.5 * torch.mean(torch.sum(mu.pow(2) + logvar.exp() - 1.0 - logvar, dim=1))


def l2_reg(x: torch.Tensor) -> torch.Tensor:
    """Mean square (DRIT's regulariser of content codes)."""
    return torch.mean(x.pow(2))


def reparameterise(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Sample ``mu + exp(logvar / 2) * eps`` with ``eps ~ N(0, 1)``."""
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


def content_consistency(
    x: torch.Tensor, y: torch.Tensor, u: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    """The paper's Eq. (1): ``L1(u, y) + L1(v, x)``.

    ``x`` original simulation, ``y`` original experimental image, ``u`` the simulation generated
    from ``y``'s content, ``v`` the experimental image generated from ``x``'s content.
    """
    return l1(u, y) + l1(v, x)


def _gaussian_blur(img: torch.Tensor, sigma_px: float) -> torch.Tensor:
    radius = max(1, int(round(3 * sigma_px)))
    t = torch.arange(-radius, radius + 1, dtype=img.dtype, device=img.device)
    k = torch.exp(-0.5 * (t / sigma_px) ** 2)
    k = k / k.sum()
    c = img.shape[1]
    padded = F.pad(img, (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(padded, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(out, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _ncc(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a = a - a.mean(dim=(-2, -1), keepdim=True)
    b = b - b.mean(dim=(-2, -1), keepdim=True)
    num = (a * b).sum(dim=(-2, -1))
    den = torch.sqrt((a * a).sum(dim=(-2, -1)) * (b * b).sum(dim=(-2, -1))) + 1e-8
    return (num / den).mean()


def structure_consistency(
    x: torch.Tensor, y: torch.Tensor, u: torch.Tensor, v: torch.Tensor, sigma_px: float
) -> torch.Tensor:
    """``(1 − NCC(g∗u, g∗y)) + (1 − NCC(g∗v, g∗x))`` with ``g`` a Gaussian of ``sigma_px``.

    An extension of Eq. (1) aimed at atom-column positions: the low-pass filter ignores the
    noise texture the style should add, and the normalised cross-correlation ignores brightness
    and contrast (which the style should change too), so what is left to match is where the
    columns are and how bright they are relative to each other."""
    return (1 - _ncc(_gaussian_blur(u, sigma_px), _gaussian_blur(y, sigma_px))) + (
        1 - _ncc(_gaussian_blur(v, sigma_px), _gaussian_blur(x, sigma_px))
    )


@dataclass
class ForwardResult:
    """Loss terms (weighted) and the images of one DRIT forward pass."""

    joint: dict[str, torch.Tensor] = field(default_factory=dict)
    alone: dict[str, torch.Tensor] = field(default_factory=dict)
    images: dict[str, torch.Tensor] = field(default_factory=dict)
    codes: dict[str, torch.Tensor] = field(default_factory=dict)

    def joint_total(self) -> torch.Tensor:
        return sum(self.joint.values())

    def alone_total(self) -> torch.Tensor:
        return sum(self.alone.values())

    def scalars(self) -> dict[str, float]:
        return {k: float(v.detach()) for k, v in {**self.joint, **self.alone}.items()}


def forward(model: DRIT, x: torch.Tensor, y: torch.Tensor) -> ForwardResult:
    """DRIT forward pass for simulated ``x`` (domain A) and experimental ``y`` (domain B).

    Both batches are (B, 1, H, W) in [-1, 1] with the same B. Returns the generated images and
    codes; losses are filled in by :func:`generator_step_losses`.
    """
    n = x.shape[0]
    c_a = model.content.encode(x, "a")
    c_b = model.content.encode(y, "b")
    mu_a, logvar_a = model.attr_a(x)
    mu_b, logvar_b = model.attr_b(y)
    z_a = reparameterise(mu_a, logvar_a)
    z_b = reparameterise(mu_b, logvar_b)
    z_rand = torch.randn_like(z_a)
    # one batched generator call per domain: cross translation, self reconstruction, random
    out_a = model.gen.decode(torch.cat([c_b, c_a, c_b]), torch.cat([z_a, z_a, z_rand]), "a")
    out_b = model.gen.decode(torch.cat([c_a, c_b, c_a]), torch.cat([z_b, z_b, z_rand]), "b")
    fake_a, self_a, rand_a = out_a.split(n)  # fake_a = u: simulation with y's content
    fake_b, self_b, rand_b = out_b.split(n)  # fake_b = v: experimental with x's content
    # cross-cycle: re-encode the translations and translate back
    c_b_rec = model.content.encode(fake_a, "a")
    c_a_rec = model.content.encode(fake_b, "b")
    mu_a_all, logvar_a_all = model.attr_a(torch.cat([fake_a, rand_a]))
    mu_b_all, logvar_b_all = model.attr_b(torch.cat([fake_b, rand_b]))
    z_a_rec = reparameterise(mu_a_all[:n], logvar_a_all[:n])
    z_b_rec = reparameterise(mu_b_all[:n], logvar_b_all[:n])
    rec_a = model.gen.decode(c_a_rec, z_a_rec, "a")
    rec_b = model.gen.decode(c_b_rec, z_b_rec, "b")
    return ForwardResult(
        images=dict(
            real_a=x,
            real_b=y,
            fake_a=fake_a,
            fake_b=fake_b,
            self_a=self_a,
            self_b=self_b,
            rand_a=rand_a,
            rand_b=rand_b,
            rec_a=rec_a,
            rec_b=rec_b,
        ),
        codes=dict(
            c_a=c_a,
            c_b=c_b,
            mu_a=mu_a,
            logvar_a=logvar_a,
            mu_b=mu_b,
            logvar_b=logvar_b,
            z_rand=z_rand,
            mu_rand_a=mu_a_all[n:],
            mu_rand_b=mu_b_all[n:],
        ),
    )


def generator_step_losses(
    model: DRIT,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: StyleConfig | None = None,
    result: ForwardResult | None = None,
) -> ForwardResult:
    """Forward pass plus all encoder/generator losses, weighted by ``cfg`` (default: model's).

    ``joint`` terms train encoders and generators; ``alone`` terms (latent regression and the
    adversarial loss of random-attribute images) are meant for content encoders and generators
    only (see the module docstring). Pass ``result`` to add the losses to an existing
    :func:`forward` result (the trainer updates the discriminators in between, as DRIT does).
    """
    cfg = cfg or model.cfg
    r = result if result is not None else forward(model, x, y)
    im, cd = r.images, r.codes
    r.joint["adv"] = cfg.lambda_adv * (
        adversarial(model.dis_a(im["fake_a"]), 1.0) + adversarial(model.dis_b(im["fake_b"]), 1.0)
    )
    r.joint["content_adv"] = cfg.lambda_content_adv * (
        bce_logits(model.dis_content(cd["c_a"]), 0.5)
        + bce_logits(model.dis_content(cd["c_b"]), 0.5)
    )
    r.joint["cycle"] = cfg.lambda_cycle * (l1(im["rec_a"], x) + l1(im["rec_b"], y))
    r.joint["self_recon"] = cfg.lambda_self_recon * (l1(im["self_a"], x) + l1(im["self_b"], y))
    r.joint["kl"] = cfg.lambda_kl * (
        kl_loss(cd["mu_a"], cd["logvar_a"]) + kl_loss(cd["mu_b"], cd["logvar_b"])
    )
    r.joint["content_l2"] = cfg.lambda_content_l2 * (l2_reg(cd["c_a"]) + l2_reg(cd["c_b"]))
    if cfg.content_consistency:
        r.joint["consistency"] = cfg.lambda_consistency * content_consistency(
            x, y, im["fake_a"], im["fake_b"]
        )
    if cfg.lambda_structure > 0:
        sigma_px = cfg.structure_blur_A / cfg.sampling_A if cfg.sampling_A else 2.0
        r.joint["structure"] = cfg.lambda_structure * structure_consistency(
            x, y, im["fake_a"], im["fake_b"], max(0.5, sigma_px)
        )
    r.alone["latent"] = cfg.lambda_latent * (
        l1(cd["mu_rand_a"], cd["z_rand"]) + l1(cd["mu_rand_b"], cd["z_rand"])
    )
    r.alone["adv_random"] = cfg.lambda_adv * (
        adversarial(model.random_discriminator("a")(im["rand_a"]), 1.0)
        + adversarial(model.random_discriminator("b")(im["rand_b"]), 1.0)
    )
    return r


def discriminator_losses(model: DRIT, r: ForwardResult) -> torch.Tensor:
    """Domain discriminators' loss on real images and detached fakes (incl. random ones)."""
    im = r.images
    loss = 0.0
    for dom, fake, rand in (("a", "fake_a", "rand_a"), ("b", "fake_b", "rand_b")):
        real = im[f"real_{dom}"]
        dis = model.dis_a if dom == "a" else model.dis_b
        loss = loss + adversarial(dis(real), 1.0) + adversarial(dis(im[fake].detach()), 0.0)
        dis2 = model.random_discriminator(dom)
        loss = loss + adversarial(dis2(real), 1.0) + adversarial(dis2(im[rand].detach()), 0.0)
    return loss


def content_discriminator_loss(model: DRIT, c_a: torch.Tensor, c_b: torch.Tensor) -> torch.Tensor:
    """Content discriminator: codes of A → 1, of B → 0 (codes are detached here)."""
    return bce_logits(model.dis_content(c_a.detach()), 1.0) + bce_logits(
        model.dis_content(c_b.detach()), 0.0
    )
