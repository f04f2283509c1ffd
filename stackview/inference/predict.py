"""Predict slip or twist for image patches with a model bundle, with an uncertainty (no Qt).

:func:`predict` takes one patch (2-D array) and a bundle (or its name/path), brings the patch to
the model's sampling and size, and runs the regressor on a set of **test-time augmentations that
keep the label valid** (:func:`tta_views`):

* small sub-pixel shifts (the lattice origin is random in training, so a shift changes nothing);
* mild contrast (gamma) changes (the regressor standardises each image, so only non-linear
  intensity changes matter);
* a 180° rotation when the material's projected monolayer is 2-, 4- or 6-fold symmetric. Rotating
  the image of a stack by 180° rotates every layer; such a monolayer maps onto itself up to a
  translation, so the image shows the same material with slip ``−D``, which is equivalent to ``D``
  (layer swap). For a 3-fold monolayer (MoS2) the rotated layers are the 60°-rotated polytype,
  so the 180° view is *not* used for slip;
* for twist models trained with random orientation: the 90° rotations (a global rotation keeps
  the relative twist) and, when the projected monolayer has a mirror line, the mirrors (a mirror
  turns θ into −θ, equivalent to θ).
  Mirrors are never used for slip: a mirrored slip image shows the other face of the crystal,
  which is a different label for a triclinic layer.

The predictions of all views are brought to the equivalent nearest the plain view's, averaged,
and folded into the canonical domain; the uncertainty is the root-mean-square distance of the
views from their mean (Å or degrees, symmetry-aware) and the per-component standard deviation.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from stackview.errors import UsageError
from stackview.core.labels import SlipLabels, TwistLabels, projected_symmetry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    """Result of :func:`predict` for one patch.

    Attributes
    ----------
    values
        Canonical labels (Å for slip, degrees for twist), shape (n,).
    names
        Label names (``Da_A``, ``Db_A``, … or ``theta_deg``).
    uncertainty
        RMS symmetry-aware distance of the test-time views from their mean (Å or degrees).
    std
        Per-component standard deviation over the views (aligned to one equivalent).
    views
        Per-view predictions aligned to the reported equivalent, shape (V, n).
    """

    values: np.ndarray
    names: tuple[str, ...]
    uncertainty: float
    std: np.ndarray
    views: np.ndarray

    def as_dict(self) -> dict:
        unit = "deg" if self.names == ("theta_deg",) else "A"
        return {**{n: float(v) for n, v in zip(self.names, self.values, strict=True)},
                f"uncertainty_{unit}": float(self.uncertainty)}


def _as_bundle(bundle):
    from stackview.models.bundle import Bundle, load_bundle

    return bundle if isinstance(bundle, Bundle) else load_bundle(bundle)


def fit_patch(patch: np.ndarray, patch_px: int, sampling_A: float | None,
              model_sampling_A: float, min_px: int | None = None) -> np.ndarray:
    """Resample a patch to the model's sampling and centre-crop it to ``patch_px`` pixels.

    ``min_px`` (a model that reads context: its window): a patch at least this large but
    smaller than ``patch_px`` is returned whole (resampled), for :func:`model_input` to fill.

    Raises
    ------
    UsageError
        When the patch is not 2-D or is smaller than the model's patch after resampling.
    """
    arr = np.asarray(patch, dtype=np.float32)
    if arr.ndim != 2:
        raise UsageError(f"a patch must be a 2-D image, not an array of shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise UsageError("the patch contains NaN or infinite values")
    if sampling_A is not None and not math.isclose(sampling_A, model_sampling_A, rel_tol=1e-3):
        if sampling_A <= 0:
            raise UsageError(f"the sampling {sampling_A} Å/px must be positive")
        zoom = sampling_A / model_sampling_A
        arr = ndimage.zoom(arr, zoom, order=3, mode="reflect", grid_mode=True).astype(np.float32)
    ny, nx = arr.shape
    need_px = patch_px if min_px is None else min(int(min_px), patch_px)
    if need_px <= min(ny, nx) and min(ny, nx) < patch_px:
        return arr
    if ny < need_px or nx < need_px:
        patch_px = need_px
        need_nm = patch_px * model_sampling_A / 10
        raise UsageError(
            f"the patch is {ny}×{nx} px at the model's sampling, smaller than the model's "
            f"{patch_px} px ({need_nm:.2f} nm)"
        )
    y0, x0 = (ny - patch_px) // 2, (nx - patch_px) // 2
    return arr[y0 : y0 + patch_px, x0 : x0 + patch_px]


def model_input(patch: np.ndarray, card, sampling_A: float | None = None) -> np.ndarray:
    """The network's input for one aligned patch: :func:`fit_patch`, and for a model that reads
    context a patch holding the window but not all its margin gets the margin filled as the
    map's windows at an image edge are: the crystal continued by whole lattice vectors (a
    mirrored margin breaks the lattice and was read up to 0.3 Å off)."""
    arr = fit_patch(patch, card.input_px, sampling_A, card.sampling_A, min_px=card.patch_px)
    if arr.shape == (card.input_px, card.input_px):
        return arr
    from stackview.core.frame import Frame
    from stackview.inference.spm import WindowSampler
    from stackview.materials import get_material

    cell = get_material(card.material).cell_2d / card.sampling_A  # rows a, b in model px
    frame = Frame(0.0, False, tuple(cell[0]), tuple(cell[1]), 0.0,
                  px_per_A=((1 / card.sampling_A, 0.0), (0.0, 1 / card.sampling_A)))
    sampler = WindowSampler(arr, card.sampling_A / 10, card.sampling_A, card.patch_px, frame,
                            context_px=card.context_px)
    centre = np.array([[arr.shape[1] / 2, arr.shape[0] / 2]])
    return sampler.extract(centre, context=True)[0]


def tta_views(card, n_shifts: int = 4) -> list[tuple[str, callable, callable]]:
    """Label-preserving test-time views for a bundle's card.

    Returns
    -------
    list of (name, image_transform, label_back)
        ``label_back`` maps the prediction on the transformed image back to the original
        image's label (a sign change after a half turn of a slip patch, else the identity).
    """
    identity = lambda y: y  # noqa: E731

    def shift(dy, dx):
        return lambda im: ndimage.shift(im, (dy, dx), order=3, mode="mirror")

    def gamma(g):
        def f(im):
            lo, hi = float(im.min()), float(im.max())
            t = (im - lo) / (hi - lo + 1e-12)
            return (t**g).astype(np.float32)
        return f

    views = [("identity", lambda im: im, identity)]
    offsets = [(0.5, 0.0), (0.0, 0.5), (-0.5, 0.0), (0.0, -0.5), (0.5, 0.5), (-0.5, -0.5)]
    views += [(f"shift{dy:+.1f},{dx:+.1f}", shift(dy, dx), identity)
              for dy, dx in offsets[:n_shifts]]
    views += [("gamma0.85", gamma(0.85), identity), ("gamma1.15", gamma(1.15), identity)]
    order, mirror = projected_symmetry(card.material)
    if card.task == "slip":
        if card.layers == 2 and order % 2 == 1:
            # hexagonal TMDs: a half turn and the mirror across a's normal keep the stacking
            # (the labels fold by ±3m, the antiparallel ones by 3m, which the half turn keeps)
            views.append(("rot180", lambda im: np.ascontiguousarray(im[::-1, ::-1]), identity))
            if mirror:
                views.append(("flip_x", lambda im: np.ascontiguousarray(im[:, ::-1]), identity))
        elif order % 2 == 0:
            # a half turn moves the layers to −t: slips (−D1, −D2) (a bilayer's −D ≡ D)
            views.append(("rot180", lambda im: np.ascontiguousarray(im[::-1, ::-1]),
                          lambda y: -np.asarray(y)))
    else:
        if card.orientation == "random":
            for k in (1, 2, 3):
                views.append((f"rot{90 * k}", lambda im, k=k: np.ascontiguousarray(np.rot90(im, k)),
                              identity))
            if mirror:
                views.append(("flip_x", lambda im: np.ascontiguousarray(im[:, ::-1]), identity))
                views.append(("flip_y", lambda im: np.ascontiguousarray(im[::-1, :]), identity))
        elif order % 2 == 0:
            views.append(("rot180", lambda im: np.ascontiguousarray(im[::-1, ::-1]), identity))
    return views


def aggregate(preds: np.ndarray, space: SlipLabels | TwistLabels) -> tuple:
    """Symmetry-aware mean of several predictions of one patch.

    Returns ``(canonical mean (n,), aligned views (V, n), rms distance, per-component std)``.
    """
    preds = np.asarray(preds, dtype=float).reshape(len(preds), -1)
    ref = preds[0]
    if isinstance(space, SlipLabels):
        aligned = np.empty_like(preds)
        for _ in range(2):  # align to the reference, then to the mean of the aligned views
            _, best = space.residual(ref, preds)  # equivalent of each view nearest to ref
            aligned = best
            ref = aligned.mean(axis=0)
    else:
        period = space.period_deg
        aligned = preds[:, 0].copy()
        for _ in range(2):
            cands = [aligned + k * period for k in (-1, 0, 1)]
            if space.mirror:
                cands += [-aligned + k * period for k in (-1, 0, 1, 2)]
            cands = np.stack(cands)
            best = np.abs(cands - float(ref[0])).argmin(axis=0)
            aligned = cands[best, np.arange(cands.shape[1])]
            ref = np.array([aligned.mean()])
        aligned = aligned[:, None]
    mean = aligned.mean(axis=0)
    if isinstance(space, SlipLabels) and space.family == "both":
        # the views' spread of the slip in the family they agree on most (their mean
        # probability); a view that reads the other family counts by its slip alone
        fam = "antiparallel" if mean[2] >= 0.5 else "parallel"
        rms = float(np.sqrt(np.mean(space.family_space(fam).distance(aligned[:, :2],
                                                                     mean[:2]) ** 2)))
    else:
        rms = float(np.sqrt(np.mean(space.distance(aligned, mean) ** 2)))
    std = aligned.std(axis=0)
    canonical = np.atleast_1d(space.canonical(mean))
    # report the views in the canonical mean's equivalent
    if isinstance(space, SlipLabels):
        _, aligned = space.residual(canonical, aligned)
    return canonical, aligned, rms, std


def predict_many(patches, bundle, sampling_A: float | None = None, tta: bool = True,
                 batch_size: int = 64) -> list[Prediction]:
    """:func:`predict` for a sequence of patches (one forward pass per batch of views)."""
    import torch

    bundle = _as_bundle(bundle)
    card = bundle.card
    space = bundle.label_space
    views = tta_views(card) if tta else tta_views(card)[:1]
    prepared = [model_input(p, card, sampling_A) for p in patches]
    stack = np.stack([fn(im) for im in prepared for _, fn, _ in views]).astype(np.float32)
    from stackview.engine.devices import module_device

    dev = module_device(bundle.model)
    out = []
    with torch.no_grad():
        for start in range(0, len(stack), batch_size):
            x = torch.from_numpy(stack[start : start + batch_size]).unsqueeze(1).to(dev)
            out.append(bundle.model(x).float().cpu().numpy())
    raw = np.concatenate(out).astype(np.float64).reshape(len(prepared), len(views), -1)
    names = tuple(card.label_convention()["names"])
    results = []
    for per_patch in raw:
        per_patch = np.stack([back(v) for v, (_, _, back) in zip(per_patch, views, strict=True)])
        values, aligned, rms, std = aggregate(per_patch, space)
        results.append(Prediction(values=values, names=names, uncertainty=rms, std=std,
                                  views=aligned))
    return results


def predict(image_patch: np.ndarray, bundle, sampling_A: float | None = None,
            tta: bool = True) -> Prediction:
    """Slip (Å) or twist (degrees) of one image patch, with a test-time-augmentation spread.

    Parameters
    ----------
    image_patch
        2-D image at least as large as the model's patch (after resampling); larger patches are
        centre-cropped.
    bundle
        :class:`stackview.models.Bundle`, or a bundle name/path (loaded each call: pass a
        loaded bundle for many calls).
    sampling_A
        Pixel size of ``image_patch`` in Å (None: already at the model's sampling).
    tta
        Use the label-preserving views of :func:`tta_views` (False: one plain forward pass and
        zero uncertainty).

    Returns
    -------
    Prediction
    """
    return predict_many([image_patch], bundle, sampling_A=sampling_A, tta=tta)[0]
