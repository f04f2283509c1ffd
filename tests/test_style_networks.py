"""Shapes of every DRIT network, configuration validation, and the losses' definitions."""

import numpy as np
import pytest
import torch
from style_images import one_torch_thread  # noqa: F401  (autouse fixture)

from stackview.errors import UsageError
from stackview.style.config import PRESETS, StyleConfig, get_preset
from stackview.style.losses import (
    content_consistency,
    generator_step_losses,
    kl_loss,
    l1,
    structure_consistency,
)
from stackview.style.networks import DRIT

TINY = PRESETS["tiny"]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return DRIT(TINY)


@pytest.mark.parametrize("shape", [(2, 1, 32, 32), (3, 1, 32, 48)])
def test_network_shapes(model, shape):
    b, _, h, w = shape
    x = torch.rand(shape) * 2 - 1
    cfg = TINY
    c = model.content.encode(x, "a")
    assert c.shape == (b, 4 * cfg.width, h // 4, w // 4)
    assert model.content.encode(x, "b").shape == c.shape
    for enc in (model.attr_a, model.attr_b):
        mu, logvar = enc(x)
        assert mu.shape == logvar.shape == (b, cfg.attr_dim)
    z = torch.randn(b, cfg.attr_dim)
    for dom in ("a", "b"):
        y = model.gen.decode(c, z, dom)
        assert y.shape == (b, 1, h, w)
        assert y.abs().max() <= 1.0
    assert model.translate(x, z).shape == (b, 1, h, w)
    assert model.dis_content(c).shape == (b,)
    outs = model.dis_a(x)
    assert len(outs) == cfg.dis_scales
    for i, o in enumerate(outs):
        s = 2 ** (i + cfg.dis_layers)
        assert o.shape == (b, 1, h // s, w // s)
    assert len(model.dis_b2(x)) == cfg.dis_scales


def test_translator_has_no_discriminators():
    m = DRIT(TINY, discriminators=False)
    assert not any(k.startswith("dis") for k in m.state_dict())
    full = DRIT(TINY)
    assert set(full.translator_state_dict()) == set(m.state_dict())


def test_shared_layers_are_shared(model):
    # one shared content block and one shared generator block serve both domains
    names = [n for n, _ in model.content.named_parameters()]
    assert any(n.startswith("shared.") for n in names)
    assert model.content.branch_a is not model.content.branch_b
    assert any(n.startswith("shared.") for n, _ in model.gen.named_parameters())


def test_presets_and_validation():
    for cfg in PRESETS.values():
        assert StyleConfig.from_dict(cfg.to_dict()) == cfg
    assert PRESETS["paper"].width == 64 and PRESETS["paper"].attr_dim == 8
    assert PRESETS["paper"].lr == 1e-4 and (PRESETS["paper"].beta1, PRESETS["paper"].beta2) == (
        0.5,
        0.999,
    )
    with pytest.raises(UsageError):
        StyleConfig(image_px=30)
    with pytest.raises(UsageError):
        StyleConfig(crop_fraction=(0.7, 0.5))
    with pytest.raises(UsageError):
        StyleConfig(lambda_cycle=-1)
    with pytest.raises(UsageError):
        StyleConfig.from_dict({"bogus": 1})
    with pytest.raises(UsageError):
        get_preset("huge")


def test_loss_definitions():
    x, y = torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4)
    u, v = torch.full_like(x, 0.5), torch.full_like(x, 0.25)
    # Eq. (1): L1(u, y) + L1(v, x) = 0.5 + 0.25
    assert content_consistency(x, y, u, v).item() == pytest.approx(0.75)
    assert l1(x, y).item() == 1.0
    assert kl_loss(torch.zeros(3, 8), torch.zeros(3, 8)).item() == 0.0
    assert kl_loss(torch.ones(1, 8), torch.zeros(1, 8)).item() == pytest.approx(4.0)


def test_all_loss_terms_present_and_ablation(model):
    torch.manual_seed(1)
    x, y = torch.rand(2, 1, 32, 32) * 2 - 1, torch.rand(2, 1, 32, 32) * 2 - 1
    r = generator_step_losses(model, x, y)
    assert set(r.joint) == {
        "adv",
        "content_adv",
        "cycle",
        "self_recon",
        "kl",
        "content_l2",
        "consistency",
    }
    assert set(r.alone) == {"latent", "adv_random"}
    # consistency is literally Eq. (1) on the generated images, times its weight
    im = r.images
    expect = TINY.lambda_consistency * (l1(im["fake_a"], y) + l1(im["fake_b"], x))
    assert r.joint["consistency"].item() == pytest.approx(expect.item())
    r2 = generator_step_losses(model, x, y, TINY.replace(content_consistency=False))
    assert "consistency" not in r2.joint
    r3 = generator_step_losses(model, x, y, TINY.replace(lambda_structure=2.0, sampling_A=0.2))
    assert 0.0 <= r3.joint["structure"].item() <= 2.0 * 4.0


def test_structure_consistency_sees_columns_not_contrast_or_noise():
    from style_images import lattice

    sim = torch.from_numpy(lattice(64)).float()[None, None]
    g = torch.Generator().manual_seed(0)
    styled = 0.3 + 0.5 * sim + 0.05 * torch.randn(sim.shape, generator=g)  # contrast + noise
    moved = torch.roll(sim, shifts=2, dims=-1)  # columns moved by 2 px
    same = structure_consistency(sim, sim, styled, styled, sigma_px=1.5).item()
    assert same < 0.1  # contrast is free; noise barely counts after the low-pass
    assert structure_consistency(sim, sim, moved, moved, sigma_px=1.5).item() > 10 * same


def test_latent_regression_gradient_reaches_weights(model):
    torch.manual_seed(2)
    x, y = torch.rand(2, 1, 32, 32) * 2 - 1, torch.rand(2, 1, 32, 32) * 2 - 1
    r = generator_step_losses(model, x, y)
    params = list(model.gen.parameters()) + list(model.content.parameters())
    grads = torch.autograd.grad(r.alone["latent"], params, allow_unused=True, retain_graph=True)
    total = sum(float(g.abs().sum()) for g in grads if g is not None)
    assert total > 0
    # the generator's first layers receive it (not only the output layer)
    first = model.gen.branch_a.res[0].body[1].weight
    g_first = torch.autograd.grad(r.alone["latent"], first, retain_graph=True)[0]
    assert float(g_first.abs().sum()) > 0
    assert np.isfinite(total)
