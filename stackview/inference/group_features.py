"""Invariant features of slips folded by a point group, and the family head (torch; no Qt).

For bilayers of materials whose projected monolayer has more symmetry than inversion (MoS2,
MoSe2, WS2: 3m), :mod:`stackview.inference.invariant`'s cosines would still tell g·D from D,
which the image cannot (the frame of a hexagonal lattice is only known up to its 6-fold
rotations). The features here are averaged over the family's operations
(:meth:`stackview.core.labels.SlipLabels.label_ops`)::

    C_q(D) = mean_g cos 2π q·f(g·D)        S_q(D) = mean_{g in P} sin 2π q·f(g·D)

with f the fractional slip and q running over the reciprocal orders up to the third shell,
keeping one feature per distinct orbit. The cosines are the same in both families (cos is even,
so averaging over P or over ±P is one thing); the sines are zero in the parallel family (−1 is
one of its operations) and tell D from −D in the antiparallel one (AA′ from A′B).

A ``family="both"`` head outputs ``[logit, C..., S...]``: the logit of the antiparallel family
(binary cross-entropy), the cosines (all samples) and the sines (trained on antiparallel samples
only: in the parallel family they are not a function of the stacking). Decoding reads the family
from the logit and the slip from the family's features: nearest entry of a table over the whole
cell, a local search and Gauss–Newton, then the fold into the family's chamber.
"""

from __future__ import annotations

import itertools
import math
from functools import lru_cache

import numpy as np
import torch
from torch import nn

_TABLE_STEPS = 120  # per cell axis; 0.027 Å for MoS2, refined by Gauss-Newton
_GN_STEPS = 6
_CANDIDATES = 4
_MAX_SHELL = 4.0  # |q| up to 4 first-shell lengths


def uses_group_features(space) -> bool:
    return getattr(space, "uses_group", False)


def _frac_ops(space, family: str) -> np.ndarray:
    """The operations as fractional-coordinate matrices M (f' = f @ M), (G, 2, 2) integers."""
    lengths = space.lengths_A
    mats = [np.diag(lengths) @ q @ np.diag(1.0 / lengths) for q in space.label_ops(family)]
    return np.round(np.array(mats)).astype(float)


@lru_cache(maxsize=16)
def _orbits(material_name: str, lengths: tuple, unit: tuple, ops_key: tuple, sines: bool):
    """Distinct orbit order sets (F, G, 2) giving non-zero, non-duplicate features."""
    mats = np.array(ops_key, dtype=float).reshape(-1, 2, 2)
    u = np.array(unit).reshape(2, 2)
    cell = u * np.array(lengths)[:, None]
    recip = np.linalg.inv(cell).T  # rows: a*, b*
    first = np.min(np.linalg.norm(recip, axis=1))
    probe = np.random.default_rng(12345).uniform(0, 1, (64, 2))
    kept, values = [], []
    for h, k in itertools.product(range(-5, 6), repeat=2):
        q = np.array([h, k], float)
        if not q.any() or np.linalg.norm(q @ recip) > _MAX_SHELL * first + 1e-9:
            continue
        orbit = np.stack([m @ q for m in mats])  # f·(M q): the order seen by f
        phase = 2 * math.pi * probe @ orbit.T
        v = (np.sin(phase) if sines else np.cos(phase)).mean(1)
        if np.abs(v).max() < 1e-9 or any(np.abs(v - w).max() < 1e-9 for w in values):
            continue
        kept.append(orbit)
        values.append(v)
    return np.stack(kept)


def feature_orbits(space, family: str, sines: bool) -> np.ndarray:
    """Orbits (F, G, 2) of the cosine (or sine) features of one family."""
    m = space.material
    ops = _frac_ops(space, family)
    return _orbits(m.name, tuple(space.lengths_A), tuple(np.asarray(m.unit_vectors).ravel()),
                   tuple(ops.ravel()), sines)


def _cos_sin(frac: torch.Tensor, orbits: torch.Tensor, sines: bool) -> torch.Tensor:
    phase = 2 * math.pi * torch.einsum("bi,fgi->bfg", frac, orbits)
    return (torch.sin(phase) if sines else torch.cos(phase)).mean(-1)


class GroupFeatures(nn.Module):
    """Slip (frac) → group-averaged features of one family or of both (cos, then sin)."""

    def __init__(self, space) -> None:
        super().__init__()
        self.space = space
        anti = "antiparallel" if "antiparallel" in space.families else None
        self.register_buffer("cos_orbits", torch.tensor(
            feature_orbits(space, space.families[0], False)), persistent=False)
        sin = feature_orbits(space, anti, True) if anti else np.zeros((0, 1, 2))
        self.register_buffer("sin_orbits", torch.tensor(sin), persistent=False)

    @property
    def n_cos(self) -> int:
        return int(self.cos_orbits.shape[0])

    @property
    def n_sin(self) -> int:
        return int(self.sin_orbits.shape[0])

    def features(self, frac: torch.Tensor, with_sines: bool) -> torch.Tensor:
        c = _cos_sin(frac, self.cos_orbits.to(frac.dtype), False)
        if not with_sines or self.n_sin == 0:
            return c
        return torch.cat([c, _cos_sin(frac, self.sin_orbits.to(frac.dtype), True)], -1)

    def jacobian(self, frac: torch.Tensor, with_sines: bool) -> torch.Tensor:
        """d features / d frac, (B, F, 2)."""
        def part(orbits, sines):
            o = orbits.to(frac.dtype)
            phase = 2 * math.pi * torch.einsum("bi,fgi->bfg", frac, o)
            w = torch.cos(phase) if sines else -torch.sin(phase)
            return 2 * math.pi * torch.einsum("bfg,fgi->bfi", w, o) / o.shape[1]

        jac = part(self.cos_orbits, False)
        if with_sines and self.n_sin:
            jac = torch.cat([jac, part(self.sin_orbits, True)], 1)
        return jac


_CACHE: dict = {}


def _features_of(space) -> GroupFeatures:
    """One GroupFeatures per label space (the orbits cost a symmetry search to build)."""
    key = (space.material.name, tuple(space.lengths_A), space.family, space.layer_swap)
    if key not in _CACHE:
        _CACHE[key] = GroupFeatures(space)
    return _CACHE[key]


def n_group_features(space) -> int:
    g = _features_of(space)
    if space.family == "both":
        return 1 + g.n_cos + g.n_sin
    return g.n_cos + (g.n_sin if space.family == "antiparallel" else 0)


def group_label_features(space, labels):
    """Target features of labels (B, 2) or, with families, (B, 3): ``[family, C, S]`` (the
    family as 0/1 where the head has its logit); numpy or torch."""
    as_numpy = not isinstance(labels, torch.Tensor)
    lab = torch.as_tensor(np.asarray(labels, dtype=np.float64)) if as_numpy else labels
    lengths = torch.as_tensor(np.asarray(space.lengths_A), dtype=lab.dtype, device=lab.device)
    g = _features_of(space).to(lab.device)
    frac = lab[:, :2] / lengths
    if space.family == "both":
        fam = (lab[:, 2:3] >= 0.5).to(lab.dtype)
        feats = torch.cat([fam, g.features(frac, True)], -1)
    else:
        feats = g.features(frac, space.family == "antiparallel")
    return feats.numpy() if as_numpy else feats


def group_raw_loss(space, raw: torch.Tensor, true: torch.Tensor, l1_weight: float):
    """Training loss of a group-feature head: MSE + L1 on the features, plus (families) the
    family's binary cross-entropy, the sines counted on antiparallel samples only."""
    target = group_label_features(space, true)
    err = raw - target
    if space.family != "both":
        flat = err.reshape(len(err), -1)
        return ((flat**2).mean(1) + l1_weight * flat.abs().mean(1)).mean()
    g = _features_of(space)
    fam = target[:, 0]
    bce = nn.functional.binary_cross_entropy_with_logits(raw[:, 0], fam)
    cos_err = err[:, 1:1 + g.n_cos]
    sin_err = err[:, 1 + g.n_cos:] * fam[:, None]
    n = g.n_cos + fam[:, None] * g.n_sin  # components that count, per sample
    sq = (cos_err**2).sum(1) + (sin_err**2).sum(1)
    ab = cos_err.abs().sum(1) + sin_err.abs().sum(1)
    return bce + ((sq + l1_weight * ab) / n[:, 0]).mean()


class GroupDecoder(nn.Module):
    """Group features → labels in the canonical chamber and the feature residual.

    Output labels: (B, 2) slips for a one-family space; (B, 3) ``(Da, Db, p)`` with ``p`` the
    probability of the antiparallel family for ``family="both"``."""

    def __init__(self, space) -> None:
        super().__init__()
        self.space = space
        self.feats = GroupFeatures(space)
        n = _TABLE_STEPS
        axis = torch.arange(n, dtype=torch.float64) / n
        grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
        self.register_buffer("grid", grid, persistent=False)
        self.register_buffer("lengths", torch.tensor(np.asarray(space.lengths_A, float)),
                             persistent=False)
        self.register_buffer("table_c", self.feats.features(grid, False).float(),
                             persistent=False)
        self.register_buffer("table_cs", self.feats.features(grid, True).float(),
                             persistent=False)

    def _solve(self, target: torch.Tensor, with_sines: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Best of the few nearest table entries, each refined; near the 6- and 3-fold points
        the invariant features change with the direction of D only at high order, so the single
        nearest entry can sit in the wrong direction."""
        table = self.table_cs if with_sines else self.table_c
        f = target.float()
        score = (table**2).sum(-1)[None, :] - 2.0 * f @ table.T
        pick = score.topk(_CANDIDATES, dim=1, largest=False).indices  # (B, K)
        b, k = pick.shape
        target = target.double().repeat_interleave(k, 0)
        frac = self.grid[pick.reshape(-1)]
        cell = 1.0 / _TABLE_STEPS
        offsets = torch.linspace(-cell, cell, 5, dtype=torch.float64)
        local = torch.stack(torch.meshgrid(offsets, offsets, indexing="ij"), -1).reshape(-1, 2)
        cand = frac[:, None, :] + local[None]
        err = ((self.feats.features(cand.reshape(-1, 2), with_sines)
                .reshape(len(cand), len(local), -1) - target[:, None]) ** 2).sum(-1)
        frac = cand[torch.arange(len(cand)), err.argmin(dim=1)]
        for _ in range(_GN_STEPS):
            r = self.feats.features(frac, with_sines) - target
            jac = self.feats.jacobian(frac, with_sines)
            jtj = jac.transpose(1, 2) @ jac + 1e-9 * torch.eye(2, dtype=frac.dtype)
            step = torch.linalg.solve(jtj, jac.transpose(1, 2) @ r[..., None])[..., 0]
            frac = frac - step.clamp(-cell / 2, cell / 2)
        res = ((self.feats.features(frac, with_sines) - target) ** 2).mean(-1).reshape(b, k)
        best = res.argmin(dim=1)
        frac = frac.reshape(b, k, 2)[torch.arange(b), best]
        return frac, res[torch.arange(b), best].sqrt()

    @torch.no_grad()
    def forward(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw = raw.double()
        space = self.space
        if space.family != "both":
            frac, residual = self._solve(raw, space.family == "antiparallel")
            labels = (frac * self.lengths).cpu().numpy()
            out = torch.as_tensor(space.canonical(labels), dtype=torch.float32)
            return out.to(raw.device), residual.float()
        p = torch.sigmoid(raw[:, 0])
        feats = raw[:, 1:]
        frac = torch.zeros(len(raw), 2, dtype=torch.float64, device=raw.device)
        residual = torch.zeros(len(raw), dtype=torch.float64, device=raw.device)
        anti = p >= 0.5
        nc = self.feats.n_cos
        if (~anti).any():
            fr, res = self._solve(feats[~anti, :nc], False)
            frac[~anti], residual[~anti] = fr, res
        if anti.any():
            fr, res = self._solve(feats[anti], True)
            frac[anti], residual[anti] = fr, res
        labels = torch.cat([frac * self.lengths, p[:, None]], -1).cpu().numpy()
        out = torch.as_tensor(space.canonical(labels), dtype=torch.float32)
        return out.to(raw.device), residual.float()


__all__ = ["GroupDecoder", "GroupFeatures", "feature_orbits", "group_label_features",
           "group_raw_loss", "n_group_features", "uses_group_features"]
