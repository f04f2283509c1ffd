"""Symmetry-aware regression loss in torch: MSE + 0.5·L1 on the error to the *nearest equivalent*
true label (the paper's loss, made invariant under the label symmetries). No Qt here.

Slip (:class:`SymmetricSlipLoss`): for every sample the true label is replaced by the
equivalent — ``D + m·a + n·b`` and, with layer swap, ``−D`` (trilayers: the six orders of the
layers, :func:`stackview.core.labels.layer_orders`)
— whose Cartesian distance to the prediction is smallest; this is the same minimum-image search
as :meth:`stackview.core.labels.SlipLabels.residual`, written in torch so that it runs on the
training device without a round trip to numpy. The loss is then taken on the Cartesian error
vector(s) ``e`` (Å) of that equivalent::

    loss = mean(e²) + 0.5 · mean(|e|)      (means over the 2·(layers−1) Cartesian components)

so ``sqrt(sum(e²))`` equals ``SlipLabels.distance`` exactly, the loss is zero on equivalent labels,
and it is the plain (non-symmetric) MSE + 0.5·L1 of the Cartesian errors whenever the given true
label is already the nearest equivalent.

Twist (:class:`SymmetricTwistLoss`): the error in degrees to the nearest of ``θ + k·period`` and,
for materials whose projected monolayer has a mirror line, ``−θ + k·period`` (see
:class:`stackview.core.labels.TwistLabels`); same MSE + 0.5·L1 form.

Both losses take predictions and labels in physical units (Å, degrees) — the regressor's output
layer already undoes its label normalisation — and return the batch mean (or, with
``reduction="none"``, one value per sample).
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from stackview.core.labels import SlipLabels, TwistLabels, layer_orders

#: weight of the L1 term (paper: λ_MSE = 1, λ_L1 = 0.5)
L1_WEIGHT = 0.5

_NEIGHBOURS = torch.tensor(list(itertools.product((-1.0, 0.0, 1.0), repeat=2)))


def _reduce(per_sample: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    if reduction == "none":
        return per_sample
    raise ValueError(f"unknown reduction {reduction!r} (use 'mean', 'sum' or 'none')")


def _working(x: torch.Tensor) -> torch.Tensor:
    """float64 stays float64 (exact tests, evaluation); anything else becomes float32."""
    return x if x.dtype == torch.float64 else x.float()


def mse_l1(error: torch.Tensor, l1_weight: float = L1_WEIGHT) -> torch.Tensor:
    """Per-sample ``mean(e²) + l1_weight·mean(|e|)`` over all but the first axis."""
    flat = error.reshape(error.shape[0], -1)
    return (flat**2).mean(dim=1) + l1_weight * flat.abs().mean(dim=1)


class SymmetricSlipLoss(torch.nn.Module):
    """MSE + 0.5·L1 of the Cartesian slip error to the nearest equivalent true label.

    Parameters
    ----------
    labels
        The label space (material, number of layers, layer swap).
    l1_weight
        Weight of the L1 term.
    """

    def __init__(self, labels: SlipLabels, l1_weight: float = L1_WEIGHT) -> None:
        super().__init__()
        self.labels = labels
        self.l1_weight = float(l1_weight)
        self.n_interfaces = labels.layers - 1
        self.register_buffer("lengths_A", torch.tensor(labels.lengths_A, dtype=torch.float64))
        self.register_buffer(
            "unit_vectors", torch.tensor(labels.material.unit_vectors, dtype=torch.float64)
        )
        self.register_buffer("neighbours", _NEIGHBOURS.clone().double())
        if labels.family == "both":
            raise ValueError("a direct head cannot read the stacking family: use the "
                             "invariant head")
        # materials folded by their point group (MoS2): the family's operations on the labels
        self.register_buffer("group", torch.tensor(np.array(labels.label_ops()),
                                                   dtype=torch.float64)
                             if labels.uses_group else None)

    def _pairs(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], self.n_interfaces, 2)

    def _min_image(self, delta: torch.Tensor) -> torch.Tensor:
        """Shortest lattice-equivalent Cartesian vectors (B, k, 2) of label differences."""
        lengths = self.lengths_A.to(delta.dtype)
        frac = delta / lengths
        frac = frac - torch.round(frac).detach()
        cand = frac.unsqueeze(-2) + self.neighbours.to(delta.dtype)  # (B, k, 9, 2)
        cart = (cand * lengths) @ self.unit_vectors.to(delta.dtype)
        best = (cart**2).sum(-1).argmin(dim=-1)  # (B, k)
        index = best[..., None, None].expand(*best.shape, 1, 2)
        return torch.gather(cart, -2, index).squeeze(-2)

    def residual(
        self, predicted_A: torch.Tensor, true_A: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Cartesian error vectors (B, k, 2) and the nearest equivalent true labels (B, n)."""
        p = self._pairs(predicted_A)
        t = self._pairs(true_A.to(predicted_A.dtype))
        if self.group is not None:
            options = [t @ q.to(t.dtype) for q in self.group]
        else:
            options = layer_orders(t) if self.labels.layer_swap else [t]
        errors = torch.stack([self._min_image(p - o) for o in options])  # (O, B, k, 2)
        norms = (errors**2).sum(dim=(-1, -2))  # (O, B)
        choice = norms.argmin(dim=0)  # (B,)
        index = choice[None, :, None, None].expand(1, *errors.shape[1:])
        err = torch.gather(errors, 0, index).squeeze(0)
        inv = torch.linalg.inv(self.unit_vectors.to(torch.float64)).to(err.dtype)
        best_true = p - err @ inv
        return err, best_true.reshape(best_true.shape[0], -1)

    def forward(
        self, predicted_A: torch.Tensor, true_A: torch.Tensor, reduction: str = "mean"
    ) -> torch.Tensor:
        err, _ = self.residual(_working(predicted_A), _working(true_A))
        return _reduce(mse_l1(err, self.l1_weight), reduction)

    def distance(self, predicted_A: torch.Tensor, true_A: torch.Tensor) -> torch.Tensor:
        """Symmetry-aware ΔD (Å) per sample, as :meth:`SlipLabels.distance`."""
        err, _ = self.residual(_working(predicted_A), _working(true_A))
        return torch.sqrt((err**2).sum(dim=(-1, -2)))


class SymmetricTwistLoss(torch.nn.Module):
    """MSE + 0.5·L1 of the twist error (degrees) to the nearest equivalent angle."""

    def __init__(self, labels: TwistLabels, l1_weight: float = L1_WEIGHT) -> None:
        super().__init__()
        self.labels = labels
        self.l1_weight = float(l1_weight)
        self.period_deg = float(labels.period_deg)
        self.mirror = bool(labels.mirror)

    def error_deg(self, predicted_deg: torch.Tensor, true_deg: torch.Tensor) -> torch.Tensor:
        """Signed error (B,) to the nearest equivalent of the true angle."""
        p = _working(predicted_deg).reshape(-1)
        t = true_deg.reshape(-1).to(p.dtype)
        period = self.period_deg
        e = p - t
        e = e - period * torch.round(e / period).detach()
        if self.mirror:
            e2 = p + t
            e2 = e2 - period * torch.round(e2 / period).detach()
            e = torch.where(e2.abs() < e.abs(), e2, e)
        return e

    def forward(
        self, predicted_deg: torch.Tensor, true_deg: torch.Tensor, reduction: str = "mean"
    ) -> torch.Tensor:
        e = self.error_deg(predicted_deg, true_deg)
        return _reduce(e**2 + self.l1_weight * e.abs(), reduction)

    def distance(self, predicted_deg: torch.Tensor, true_deg: torch.Tensor) -> torch.Tensor:
        return self.error_deg(predicted_deg, true_deg).abs()


def make_loss(label_space: SlipLabels | TwistLabels, l1_weight: float = L1_WEIGHT):
    """The symmetric loss module that matches a label space."""
    if isinstance(label_space, SlipLabels):
        return SymmetricSlipLoss(label_space, l1_weight)
    if isinstance(label_space, TwistLabels):
        return SymmetricTwistLoss(label_space, l1_weight)
    raise TypeError(f"no loss for label space {type(label_space).__name__}")


#: Tikhonov damping (feature units² per label unit²) of the linearised label error: it caps the
#: label error one unit of feature error can stand for at 1/(2·sqrt(damping)) = 5 Å (or °), so
#: that exactly at a fixed point of the symmetries, where the features carry no first-order
#: information, the term stays finite
LINEAR_DAMPING = 0.01
_FD_STEP = 1e-4  # label units (Å, °): central differences of smooth trigonometric features


def _feature_part(space, features: torch.Tensor) -> torch.Tensor:
    """The columns of an invariant head's output that are smooth features of the labels (a
    family logit is not)."""
    if getattr(space, "uses_group", False) and space.family == "both":
        from stackview.inference.group_features import _features_of

        return features[:, 1:1 + _features_of(space).n_cos]
    return features


def linearised_label_error(space, raw: torch.Tensor, true: torch.Tensor,
                           damping: float = LINEAR_DAMPING) -> torch.Tensor:
    """The label error (B, n) that one damped Gauss–Newton step from the true label reads from an
    invariant head's raw features: ``(JᵀJ + damping)⁻¹ Jᵀ (raw − f(true))``, J the features'
    Jacobian at the true label; slips come back as Cartesian vectors (Å), twist in degrees.

    Why: the features are cosines, flat at the fixed points of the label symmetries (for a bilayer
    D = 0, a/2, b/2, (a+b)/2 with D ≡ −D). A small feature error there is a large slip error,
    and a loss on the features alone barely sees it: the first ReS2 context model read
    (0.07, 0.21) Å as (0.24, 0.42). The gradient flows through ``raw`` only."""
    from stackview.inference.invariant import label_features

    twist = hasattr(space, "period_deg")
    n = 1 if twist else 2 * (space.layers - 1)
    lab = true.detach().double()[:, :n]
    rest = true.detach().double()[:, n:]

    def feats(x: torch.Tensor) -> torch.Tensor:
        return _feature_part(space, label_features(space, torch.cat([x, rest], 1)))

    f0 = feats(lab)
    cols = []
    for i in range(n):
        step = torch.zeros_like(lab)
        step[:, i] = _FD_STEP
        cols.append((feats(lab + step) - feats(lab - step)) / (2 * _FD_STEP))
    jac = torch.stack(cols, -1)  # (B, F, n)
    normal = jac.transpose(1, 2) @ jac + damping * torch.eye(n, dtype=jac.dtype, device=jac.device)
    gain = torch.linalg.solve(normal, jac.transpose(1, 2)).to(raw.dtype)  # (B, n, F)
    residual = _feature_part(space, raw) - f0.to(raw.dtype)
    delta = (gain @ residual.unsqueeze(-1)).squeeze(-1)
    if twist:
        return delta
    unit = torch.as_tensor(np.asarray(space.material.unit_vectors), dtype=delta.dtype,
                           device=delta.device)
    return (delta.reshape(len(delta), -1, 2) @ unit).reshape(len(delta), -1)


class RawOutputLoss(torch.nn.Module):
    """The training loss on a regressor's raw outputs (what :func:`train` optimises).

    Direct heads: the symmetric label loss (:func:`make_loss`) on the de-normalised outputs.
    Invariant heads: MSE + 0.5·L1 between the predicted and the true invariant features, which
    is symmetric by construction (the features do not change under the label symmetries), plus
    ``label_error_weight`` times MSE + 0.5·L1 of :func:`linearised_label_error` (the features'
    error expressed as a label error, which weighs it up near the symmetries' fixed points).
    """

    def __init__(self, spec, l1_weight: float = L1_WEIGHT, label_error_weight: float = 0.0) -> None:
        super().__init__()
        space = spec.label_space()
        self.space = space
        self.invariant = spec.head == "invariant"
        self.l1_weight = float(l1_weight)
        self.label_error_weight = float(label_error_weight) if self.invariant else 0.0
        self.register_buffer("offset", torch.tensor(spec.label_offset, dtype=torch.float32))
        self.register_buffer("scale", torch.tensor(spec.label_scale, dtype=torch.float32))
        # an invariant head's loss is on its features; a direct one's on the labels
        self.label_loss = None if self.invariant else make_loss(space, l1_weight)

    def forward(self, raw: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
        raw = raw.float()
        if not self.invariant:
            return self.label_loss(self.offset + self.scale * raw, true)
        if getattr(self.space, "uses_group", False):
            from stackview.inference.group_features import group_raw_loss

            loss = group_raw_loss(self.space, raw, true.float(), self.l1_weight)
        else:
            from stackview.inference.invariant import label_features

            target = label_features(self.space, true.float())
            loss = mse_l1(raw - target, self.l1_weight).mean()
        if self.label_error_weight:
            err = linearised_label_error(self.space, raw, true)
            loss = loss + self.label_error_weight * mse_l1(err, self.l1_weight).mean()
        return loss


def plain_loss(predicted: torch.Tensor, true: torch.Tensor, l1_weight: float = L1_WEIGHT):
    """The paper's non-symmetric MSE + 0.5·L1 on raw values (for comparison and tests)."""
    return mse_l1(predicted - true, l1_weight).mean()


__all__ = [
    "L1_WEIGHT",
    "RawOutputLoss",
    "SymmetricSlipLoss",
    "SymmetricTwistLoss",
    "linearised_label_error",
    "make_loss",
    "mse_l1",
    "plain_loss",
]
