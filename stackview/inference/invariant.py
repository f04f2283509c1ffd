"""Slip-invariant features: what the ``"invariant"`` regressor head predicts, and how a prediction
is decoded back to a slip (torch; no Qt).

A bilayer slip D is only defined up to lattice translations (and, for most materials, D ≡ −D).
Regressing (Da, Db) directly asks the network to learn a function that jumps at the edges of the
canonical domain; on a CPU budget it did not learn at all (held-out ΔD 1.84 Å against 1.70 Å for a
constant guess, docs/models.md). The features

    c_hk(D) = cos 2π(h·fa + k·fb),     fa = Da/|a|, fb = Db/|b|

are smooth, exactly invariant under D → D + m·a + n·b and D → −D, and together they determine D up
to exactly those symmetries. The same network with these targets reached held-out ΔD 0.09 Å after
2100 CPU steps (``benchmarks/pilot_invariant_head.py``). When a material has no D ≡ −D symmetry
the sines ``s_hk`` are added so that D and −D stay distinguishable.

Twist uses the same idea on the circle: with φ = 2π·θ/period, the features are cos kφ (k = 1…3)
when the projected monolayer has a mirror (θ ≡ −θ), else cos kφ and sin kφ (k = 1, 2); they remove
the jump of a direct θ regression at the ends of the domain (θ near 0° and near the period are
close stackings). :func:`label_features` and :func:`make_decoder` pick the right form for a label
space.

Decoding (:class:`InvariantDecoder`): nearest table entry over the canonical domain, then a few
Gauss–Newton steps on the feature residual; the residual that remains is returned too — a large
one means the features are inconsistent with any slip (the window is not the material the model
was trained for, or it is too damaged to read).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

#: reciprocal-lattice orders (h, k) of the features: the first and second shells
ORDERS = ((1, 0), (0, 1), (1, 1), (1, -1), (2, 0), (0, 2), (2, 1), (1, 2), (2, -1), (1, -2))

_TABLE_STEPS = 160  # table points along a; ~0.04 Å for ReS2, refined by Gauss–Newton
_GN_STEPS = 6


def n_features(layer_swap: bool) -> int:
    return len(ORDERS) * (1 if layer_swap else 2)


def _phases(frac: torch.Tensor, orders: torch.Tensor) -> torch.Tensor:
    return 2 * math.pi * (frac @ orders.T)


def slip_features(labels_A, lengths_A, layer_swap: bool = True):
    """Feature vectors (B, F) of bilayer slips (B, 2) in Å; numpy in → numpy out, torch → torch."""
    as_numpy = not isinstance(labels_A, torch.Tensor)
    lab = torch.as_tensor(np.asarray(labels_A, dtype=np.float64)) if as_numpy else labels_A
    lengths = torch.as_tensor(np.asarray(lengths_A, dtype=np.float64), dtype=lab.dtype,
                              device=lab.device)
    orders = torch.tensor(ORDERS, dtype=lab.dtype, device=lab.device)
    phase = _phases(lab.reshape(-1, 2) / lengths, orders)
    feats = torch.cos(phase) if layer_swap else torch.cat([torch.cos(phase), torch.sin(phase)], 1)
    return feats.numpy() if as_numpy else feats


#: the range of the gain the decoders fit (see :func:`_gain_free_score`)
GAIN_RANGE = (0.5, 1.5)


def _gain(table_features: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """The least-squares gain g of ``features ≈ g·table_features`` per row, within GAIN_RANGE."""
    dot = (table_features * features).sum(-1)
    return (dot / (table_features**2).sum(-1).clamp_min(1e-12)).clamp(*GAIN_RANGE)


def _gain_free_score(features: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """(B, T) score of every table entry for features that are the entry's times a gain.

    Why a gain: a regressor trained with a squared loss predicts the mean of the features over
    the slips an image leaves possible, and the mean of a cosine is the cosine shrunk. Shrunk
    features are nearest to those of a slip farther from the symmetries' fixed points, so a
    decoder that takes them at face value reads AA-like stackings 0.1-0.2 Å too far out (the ReS2
    context model on held-out fields within 0.3 Å of a fixed point: 0.147 Å mean error, 0.107
    with the gain, against 0.033 elsewhere; ``benchmarks/decoder_gain.py``).
    A free gain per window absorbs the shrinkage; the best gain within GAIN_RANGE is used."""
    dot = features @ table.T
    norm = (table**2).sum(-1).clamp_min(1e-12)[None, :]
    lo, hi = GAIN_RANGE
    gain = (dot / norm).clamp(lo, hi)
    # -|f - g t|² up to the |f|² term, which does not change the argmax
    return 2 * gain * dot - gain**2 * norm


def gain_gauss_newton(features, jacobian, frac: torch.Tensor, target: torch.Tensor, steps: int,
                      max_step: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss–Newton on ``gain·features(frac) ≈ target`` in the slip and the gain together
    (near a fixed point the two trade off, so fitting them apart converges slowly): the refined
    fractional slips (B, n) and gains (B,). ``features``/``jacobian``: (B, n) → (B, F) and
    (B, F, n)."""
    lo, hi = GAIN_RANGE
    free = hi > lo
    gain = _gain(features(frac), target)
    for _ in range(steps):
        t = features(frac)
        r = gain[:, None] * t - target
        cols = [gain[:, None, None] * jacobian(frac)] + ([t[..., None]] if free else [])
        jac = torch.cat(cols, -1)
        n = jac.shape[-1]
        jtj = jac.transpose(1, 2) @ jac + 1e-9 * torch.eye(n, dtype=frac.dtype, device=frac.device)
        step = torch.linalg.solve(jtj, jac.transpose(1, 2) @ r[..., None])[..., 0]
        k = frac.shape[-1]
        frac = frac - step[:, :k].clamp(-max_step, max_step)
        if free:
            gain = (gain - step[:, k]).clamp(lo, hi)
    return frac, gain


class InvariantDecoder(nn.Module):
    """Features (B, F) → slip (B, 2) in Å in the canonical domain, and the feature residual (B,).

    Parameters
    ----------
    lengths_A
        |a| and |b| of the label convention.
    layer_swap
        Whether D ≡ −D (cosines only) or not (cosines and sines).
    """

    def __init__(self, lengths_A, layer_swap: bool = True) -> None:
        super().__init__()
        # buffers are derived from the spec, so they are not part of a saved state dict
        self.layer_swap = bool(layer_swap)
        na = _TABLE_STEPS
        nb = na // 2 + 1 if layer_swap else na
        fb_hi = 0.5 if layer_swap else 1.0
        ga = torch.arange(na, dtype=torch.float64) / na
        gb = torch.linspace(0.0, fb_hi, nb, dtype=torch.float64) if layer_swap else \
            torch.arange(nb, dtype=torch.float64) / nb
        grid = torch.stack(torch.meshgrid(ga, gb, indexing="ij"), -1).reshape(-1, 2)
        lengths = torch.tensor(np.asarray(lengths_A, float))
        self.register_buffer("lengths", lengths, persistent=False)
        self.register_buffer("orders", torch.tensor(ORDERS, dtype=torch.float64), persistent=False)
        self.register_buffer("grid", grid, persistent=False)
        self.register_buffer("table", self._features(grid).float(), persistent=False)

    def _features(self, frac: torch.Tensor) -> torch.Tensor:
        phase = _phases(frac, self.orders.to(frac.dtype))
        if self.layer_swap:
            return torch.cos(phase)
        return torch.cat([torch.cos(phase), torch.sin(phase)], -1)

    def _jacobian(self, frac: torch.Tensor) -> torch.Tensor:
        """d features / d frac, (B, F, 2)."""
        orders = self.orders.to(frac.dtype)
        phase = _phases(frac, orders)
        d_cos = -torch.sin(phase)[..., None] * (2 * math.pi * orders)
        if self.layer_swap:
            return d_cos
        d_sin = torch.cos(phase)[..., None] * (2 * math.pi * orders)
        return torch.cat([d_cos, d_sin], -2)

    @torch.no_grad()
    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = features.float()
        # the table entry whose features, times the best gain within GAIN_RANGE, are nearest
        score = _gain_free_score(f, self.table)
        frac = self.grid[score.argmax(dim=1)].double()
        target = f.double()
        # a finer local search first: Gauss-Newton stalls on the table's points where D ≡ -D
        # (all feature gradients vanish there)
        cell = 1.0 / _TABLE_STEPS
        offsets = torch.linspace(-cell, cell, 9, dtype=torch.float64)
        local = torch.stack(torch.meshgrid(offsets, offsets, indexing="ij"), -1).reshape(-1, 2)
        cand = frac[:, None, :] + local[None]  # (B, 81, 2)
        feats = self._features(cand)
        gain = _gain(feats, target[:, None, :])
        misfit = ((gain[..., None] * feats - target[:, None, :]) ** 2).sum(-1)
        frac = cand[torch.arange(len(cand)), misfit.argmin(dim=1)]
        frac, _ = gain_gauss_newton(self._features, self._jacobian, frac, target, _GN_STEPS,
                                    cell / 4)  # steps that stay in the local basin
        # the residual at gain 1, as before: how far the features are from any slip's
        residual = torch.sqrt(((self._features(frac) - target) ** 2).mean(-1))
        return (self._fold(frac) * self.lengths).float(), residual.float()

    def _fold(self, frac: torch.Tensor) -> torch.Tensor:
        """Into the canonical domain: fa in [0, 1), fb in [0, 1/2] (D ≡ -D) or [0, 1)."""
        frac = frac - torch.floor(frac)
        if self.layer_swap:
            upper = frac[:, 1] > 0.5
            flipped = (1.0 - frac) % 1.0
            frac = torch.where(upper[:, None], flipped, frac)
        return frac


class TwistDecoder(nn.Module):
    """Twist features (B, F) → θ (B, 1) in degrees in the canonical domain, and the residual."""

    def __init__(self, period_deg: float, mirror: bool) -> None:
        super().__init__()
        self.period = float(period_deg)
        self.mirror = bool(mirror)
        hi = self.period / 2 if mirror else self.period
        grid = torch.linspace(0.0, hi, 1201, dtype=torch.float64)
        self.register_buffer("grid", grid, persistent=False)
        self.register_buffer("table", self._features(grid).float(), persistent=False)

    def _features(self, theta: torch.Tensor) -> torch.Tensor:
        return twist_features(theta, self.period, self.mirror)

    def _derivative(self, theta: torch.Tensor) -> torch.Tensor:
        phi = 2 * math.pi * theta[:, None] / self.period
        w = 2 * math.pi / self.period
        ks = _twist_orders(self.mirror, theta.dtype, theta.device)
        d = -torch.sin(ks * phi) * ks * w
        if self.mirror:
            return d
        return torch.cat([d, torch.cos(ks * phi) * ks * w], -1)

    def _jacobian(self, theta: torch.Tensor) -> torch.Tensor:
        """d features / d θ, (B, F, 1), for :func:`gain_gauss_newton`."""
        return self._derivative(theta[:, 0])[..., None]

    @torch.no_grad()
    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = features.float()
        # a gain per window as in the slip decoder: noisy windows give shrunk features, which
        # at face value read farther from the flat ends of the domain and, at the worst, as
        # the other end (the bare MoS2 twist model on 992 noisy held-out 448-px fields: 12
        # errors over 5° with gain 1, 8 with the gain; benchmarks/results/twist_decoder_gain.json)
        score = _gain_free_score(f, self.table)
        theta = self.grid[score.argmax(dim=1)].double()[:, None]
        target = f.double()
        cell = float(self.grid[1] - self.grid[0])
        theta, _ = gain_gauss_newton(lambda t: self._features(t[:, 0]), self._jacobian, theta,
                                     target, _GN_STEPS, cell)
        theta = theta[:, 0]
        residual = torch.sqrt(((self._features(theta) - target) ** 2).mean(-1))
        theta = theta % self.period
        if self.mirror:
            theta = torch.where(theta > self.period / 2, self.period - theta, theta)
        return theta[:, None].float(), residual.float()


def _twist_orders(mirror: bool, dtype, device) -> torch.Tensor:
    return torch.arange(1, 4 if mirror else 3, dtype=dtype, device=device)


def twist_features(theta_deg, period_deg: float, mirror: bool):
    """Feature vectors (B, F) of twist angles (B,) or (B, 1) in degrees (numpy or torch)."""
    as_numpy = not isinstance(theta_deg, torch.Tensor)
    theta = torch.as_tensor(np.asarray(theta_deg, dtype=np.float64)) if as_numpy else theta_deg
    phi = 2 * math.pi * theta.reshape(-1, 1) / float(period_deg)
    ks = _twist_orders(mirror, theta.dtype, theta.device)
    feats = torch.cos(ks * phi) if mirror else torch.cat([torch.cos(ks * phi),
                                                          torch.sin(ks * phi)], -1)
    return feats.numpy() if as_numpy else feats


#: bispectrum pairs (g1, g2) of the trilayer features
_BISPECTRUM = (((1, 0), (0, 1)), ((1, 0), (1, 0)), ((0, 1), (0, 1)), ((1, 0), (0, -1)),
               ((1, 1), (1, -1)), ((1, 0), (1, 1)))
N_TRILAYER_FEATURES = len(ORDERS) + 2 * len(_BISPECTRUM)
# Over uniform slips the power features spread with a standard deviation of ~1.2, the
# bispectrum's real parts ~0.55·9 and its imaginary parts only ~0.2·9: scaled to ~1 each, so
# that the loss does not neglect the imaginary parts, the only ones that tell (D1, D2) from the
# half-turned (−D1, −D2) (unscaled, a network left them at zero and confused the two).
_BI_REAL_SCALE = 2.0 / 9
_BI_IMAG_SCALE = 6.0 / 9


def _comb(frac: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """S(g) = Σ_k exp(2πi g·t_k) over the layer offsets t = {0, D1, D1 + D2}: (B, G) complex."""
    t1 = frac[:, 0]
    t2 = frac[:, 0] + frac[:, 1]
    ph1, ph2 = 2 * math.pi * (t1 @ g.T), 2 * math.pi * (t2 @ g.T)
    return 1 + torch.polar(torch.ones_like(ph1), ph1) + torch.polar(torch.ones_like(ph2), ph2)


def _trilayer_from_frac(frac: torch.Tensor) -> torch.Tensor:
    """Features (B, 22) of fractional trilayer slips (B, 2, 2)."""
    g = torch.tensor(ORDERS, dtype=frac.dtype, device=frac.device)
    power = (_comb(frac, g).abs() ** 2 - 3) / 2  # = Σ over D1, D2, D1+D2 of cos 2π g·d
    g1 = torch.tensor([p[0] for p in _BISPECTRUM], dtype=frac.dtype, device=frac.device)
    g2 = torch.tensor([p[1] for p in _BISPECTRUM], dtype=frac.dtype, device=frac.device)
    bi = _comb(frac, g1) * _comb(frac, g2) * torch.conj(_comb(frac, g1 + g2))
    return torch.cat([power, bi.real * _BI_REAL_SCALE, bi.imag * _BI_IMAG_SCALE], -1)


def trilayer_features(labels_A, lengths_A):
    """Features (B, 22) of trilayer slips (B, 4) = (D1, D2) in Å (numpy or torch).

    The layers sit at offsets t = {0, D1, D1 + D2} and the image depends only on that set (in
    any order, up to a translation). With S(g) = Σ_k exp(2πi g·t_k), the features are the
    power (|S(g)|² − 3)/2 = Σ cos 2π g·d over the pairwise differences d ∈ {D1, D2, D1 + D2}
    for the ten orders g of the bilayer features, and the bispectrum S(g1)·S(g2)·S*(g1 + g2)
    for six pairs (real and imaginary parts scaled to a spread of ~1): unchanged by lattice
    translations, by a common translation of the offsets and by any order of the layers; the
    bispectrum's phase tells (D1, D2) from (−D1, −D2), which the power alone cannot."""
    as_numpy = not isinstance(labels_A, torch.Tensor)
    lab = torch.as_tensor(np.asarray(labels_A, dtype=np.float64)) if as_numpy else labels_A
    lengths = torch.as_tensor(np.asarray(lengths_A, dtype=np.float64), dtype=lab.dtype,
                              device=lab.device)
    feats = _trilayer_from_frac(lab.reshape(-1, 2, 2) / lengths)
    return feats.numpy() if as_numpy else feats


_TRI_TABLE_STEPS = 20  # per fractional axis: 20⁴ table entries, refined by Gauss–Newton


class TrilayerDecoder(nn.Module):
    """Trilayer features (B, 22) → slips (B, 4) in Å in the canonical domain, and the residual.

    The nearest entries of a table over both slips' full cells (the few best, since the table is
    coarse), each refined by Gauss–Newton on all features over the four fractional coordinates;
    the best fit wins."""

    def __init__(self, space, candidates: int = 16) -> None:
        super().__init__()
        self.space = space
        self.candidates = int(candidates)
        self.register_buffer("lengths", torch.tensor(np.asarray(space.lengths_A, float)),
                             persistent=False)
        axis = torch.arange(_TRI_TABLE_STEPS, dtype=torch.float64) / _TRI_TABLE_STEPS
        grid = torch.stack(torch.meshgrid(axis, axis, axis, axis, indexing="ij"), -1)
        grid = grid.reshape(-1, 2, 2)
        self.register_buffer("grid", grid, persistent=False)
        table = _trilayer_from_frac(grid).float()
        self.register_buffer("table", table, persistent=False)
        self.register_buffer("table_sq", (table**2).sum(-1), persistent=False)

    def _refine(self, frac: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        h = 1e-5
        eye = torch.eye(4, dtype=frac.dtype, device=frac.device).reshape(4, 2, 2) * h
        for _ in range(10):
            r = _trilayer_from_frac(frac) - target
            jac = torch.stack([(_trilayer_from_frac(frac + e) - _trilayer_from_frac(frac - e))
                               / (2 * h) for e in eye], -1)  # (B, F, 4)
            jtj = jac.transpose(1, 2) @ jac + 1e-6 * torch.eye(4, dtype=frac.dtype,
                                                             device=frac.device)
            delta = torch.linalg.solve(jtj, jac.transpose(1, 2) @ r[..., None])[..., 0]
            frac = frac - delta.clamp(-0.5 / _TRI_TABLE_STEPS, 0.5 / _TRI_TABLE_STEPS) \
                .reshape(-1, 2, 2)
        return frac

    @torch.no_grad()
    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = features.float()
        picks = []
        for chunk in torch.split(f, 64):
            score = self.table_sq[None, :] - 2.0 * chunk @ self.table.T
            picks.append(score.topk(self.candidates, dim=1, largest=False).indices)
        pick = torch.cat(picks)  # (B, K)
        b, k = pick.shape
        target = f.double().repeat_interleave(k, 0)
        frac = self._refine(self.grid[pick.reshape(-1)], target)
        err = ((_trilayer_from_frac(frac) - target) ** 2).mean(-1).reshape(b, k)
        best = err.argmin(dim=1)
        frac = frac.reshape(b, k, 2, 2)[torch.arange(b), best]
        residual = err[torch.arange(b), best].sqrt()
        labels = (frac * self.lengths).reshape(-1, 4)
        canonical = torch.as_tensor(self.space.canonical(labels.cpu().numpy()), dtype=f.dtype)
        return canonical.to(features.device), residual.float()


def label_features(space, labels):
    """Invariant features of labels in a :class:`SlipLabels` (bilayer or trilayer) or
    :class:`TwistLabels` space."""
    if hasattr(space, "period_deg"):
        return twist_features(labels, space.period_deg, space.mirror)
    if getattr(space, "uses_group", False):
        from stackview.inference.group_features import group_label_features

        return group_label_features(space, labels)
    lengths = space.lengths_A
    if isinstance(labels, torch.Tensor):
        lengths = torch.as_tensor(np.asarray(lengths), dtype=labels.dtype, device=labels.device)
    if space.layers == 3:
        return trilayer_features(labels, lengths)
    return slip_features(labels, lengths, space.layer_swap)


def n_label_features(space) -> int:
    if hasattr(space, "period_deg"):
        return 3 if space.mirror else 4
    if getattr(space, "uses_group", False):
        from stackview.inference.group_features import n_group_features

        return n_group_features(space)
    if space.layers == 3:
        return N_TRILAYER_FEATURES
    return n_features(space.layer_swap)


def make_decoder(space) -> nn.Module:
    """The decoder (features → labels, residual) of a label space."""
    if hasattr(space, "period_deg"):
        return TwistDecoder(space.period_deg, space.mirror)
    if getattr(space, "uses_group", False):
        from stackview.inference.group_features import GroupDecoder

        return GroupDecoder(space)
    if space.layers == 3:
        return TrilayerDecoder(space)
    return InvariantDecoder(space.lengths_A, space.layer_swap)


__all__ = ["GAIN_RANGE", "ORDERS", "InvariantDecoder", "TrilayerDecoder", "TwistDecoder",
           "gain_gauss_newton", "label_features", "make_decoder", "n_features",
           "n_label_features", "slip_features", "trilayer_features", "twist_features"]
