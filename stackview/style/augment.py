"""Affine augmentation of both style domains (the paper's prong II).

Each training patch is one random affine view of a source image: a rotation in
[-45°, +45°], a square crop of 45–60 % of a *view* side, resized to the patch size, and
horizontal / vertical flips with probability 0.5 — the paper's recipe ("rotated in the range of
-45° to 45°, randomly cropped to a size from 462 × 462 to 612 × 612 pixels and resized to
1024 × 1024, flipped with a probability of 50 %"). Rotation, crop, rescale and flips are
composed into one affine map and interpolated once (bilinear, mirrored edges).

Physical scale: the paper's view is the whole 1024² image, so its patches are magnified ~1.9×.
Here the view side is ``patch_px / mean(crop_fraction)`` pixels of a source image that is already
at the model's sampling, so the mean magnification is 1 (a model trained on patches at
``sampling_A`` translates images at ``sampling_A``) and the rescale jitter is the paper's
relative range (±14 %). The crop position is random over the whole source image; the rotated
crop is kept inside the image when it fits. Numpy/scipy only; no torch, no Qt.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from stackview.errors import UsageError


@dataclass(frozen=True)
class AffineAugment:
    """Parameters of the random affine view (defaults: the paper's).

    Parameters
    ----------
    patch_px
        Side of the output patch in pixels.
    rotation_deg
        Rotations are uniform in [-rotation_deg, +rotation_deg].
    crop_fraction
        Crop side as a fraction of the view side, uniform in this range.
    flip_probability
        Probability of a left–right flip and, independently, of an up–down flip.
    """

    patch_px: int
    rotation_deg: float = 45.0
    crop_fraction: tuple[float, float] = (0.45, 0.60)
    flip_probability: float = 0.5

    def __post_init__(self) -> None:
        lo, hi = self.crop_fraction
        if self.patch_px < 4:
            raise UsageError(f"patch_px must be at least 4, not {self.patch_px}")
        if not 0 < lo <= hi <= 1:
            raise UsageError("crop_fraction must be (low, high) with 0 < low <= high <= 1")

    @property
    def view_px(self) -> float:
        """Side of the view in source pixels (mean crop ↔ patch_px, i.e. magnification 1)."""
        return self.patch_px / (0.5 * (self.crop_fraction[0] + self.crop_fraction[1]))

    def footprint_px(self) -> float:
        """Largest side of the source region a patch can cover (crop at 45° rotation)."""
        theta = math.radians(min(self.rotation_deg, 45.0))
        return self.crop_fraction[1] * self.view_px * (abs(math.cos(theta)) + abs(math.sin(theta)))

    def sample(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One random augmented patch (float32, ``patch_px`` square) of a 2-D image."""
        image = np.asarray(image, dtype=np.float32)
        if image.ndim != 2:
            raise UsageError(f"augmentation needs a 2-D image, not shape {image.shape}")
        fraction = rng.uniform(*self.crop_fraction)
        theta = math.radians(rng.uniform(-self.rotation_deg, self.rotation_deg))
        flip_lr = rng.random() < self.flip_probability
        flip_ud = rng.random() < self.flip_probability
        crop_px = fraction * self.view_px
        scale = crop_px / self.patch_px  # source pixels per output pixel
        half = 0.5 * crop_px * (abs(math.cos(theta)) + abs(math.sin(theta)))
        centre = []
        for n in image.shape:
            low, high = half, n - 1 - half
            centre.append(rng.uniform(low, high) if high > low else 0.5 * (n - 1))
        c, s = math.cos(theta), math.sin(theta)
        rot = np.array([[c, -s], [s, c]])
        flips = np.diag([-scale if flip_ud else scale, -scale if flip_lr else scale])
        matrix = rot @ flips
        out_centre = np.full(2, 0.5 * (self.patch_px - 1))
        offset = np.asarray(centre) - matrix @ out_centre
        return ndimage.affine_transform(
            image,
            matrix,
            offset=offset,
            output_shape=(self.patch_px, self.patch_px),
            order=1,
            mode="mirror",
        ).astype(np.float32)

    def batch(
        self, images: Sequence[np.ndarray], size: int, rng: np.random.Generator
    ) -> np.ndarray:
        """``size`` patches from randomly chosen ``images``, shape (size, 1, patch, patch)."""
        if not images:
            raise UsageError("no images to sample training patches from")
        picks = rng.integers(0, len(images), size=size)
        return np.stack([self.sample(images[i], rng) for i in picks])[:, None]
