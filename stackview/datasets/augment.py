"""Image-level robustness augmentations of training patches (numpy/scipy only; no torch, no Qt).

The paper trains its regressor with "random proportions of defects, masks, contaminations and
Gaussian noise" and tests it down to PSNR 7. Structural defects (vacancies, holes in one layer)
are made on the atoms in :mod:`stackview.datasets.generate`; this module holds what acts on the
image:

* :func:`add_noise_psnr` — Gaussian noise at a target PSNR (dB) for an image in [0, 1]
  (PSNR = 10·log10(1 / MSE), the paper's definition with MAX = 1);
* :func:`apply_mask` — occluding blobs (a smooth random mask filled with the local mean);
* :func:`add_contamination` — a random crop of a hydrocarbon "light wash" texture
  (``stackview/resources/contamination``, derived from the paper's release; see its README)
  added with a random strength;
* :class:`OnlineAugment` — the same operations drawn per batch during training.

Every function takes an explicit ``numpy.random.Generator``, so results are reproducible.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from stackview.errors import UsageError
from stackview.paths import RESOURCES_DIR

CONTAMINATION_DIR = RESOURCES_DIR / "contamination"


def normalise01(image: np.ndarray) -> np.ndarray:
    """Min–max normalise an image to [0, 1] (float32); a flat image becomes zeros."""
    im = np.asarray(image, dtype=np.float32)
    lo, hi = float(im.min()), float(im.max())
    if hi - lo <= 0:
        return np.zeros_like(im)
    return (im - lo) / (hi - lo)


def psnr_dB(reference: np.ndarray, noisy: np.ndarray, max_value: float = 1.0) -> float:
    """Peak signal-to-noise ratio 10·log10(MAX² / MSE) in dB."""
    mse = float(np.mean((np.asarray(noisy, float) - np.asarray(reference, float)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(max_value**2 / mse)


def add_noise_psnr(image01: np.ndarray, psnr: float, rng: np.random.Generator) -> np.ndarray:
    """Add zero-mean Gaussian noise so that the PSNR against ``image01`` is ``psnr`` dB.

    The image is expected in [0, 1] (MAX = 1); the noise standard deviation is
    ``10**(-psnr/20)`` (e.g. 0.447 at PSNR 7, 0.032 at PSNR 30). Values are not clipped.
    """
    if not (0 < psnr < 100):
        raise UsageError(f"the PSNR {psnr:g} dB must be between 0 and 100")
    sigma = 10.0 ** (-psnr / 20.0)
    return (image01 + rng.normal(0.0, sigma, size=image01.shape)).astype(np.float32)


def random_blob_mask(shape: tuple[int, int], fraction: float, rng: np.random.Generator,
                     smooth_px: float | None = None) -> np.ndarray:
    """A boolean mask of smooth random blobs covering ``fraction`` of the image."""
    if not (0 <= fraction < 1):
        raise UsageError(f"the mask fraction {fraction:g} must be in [0, 1)")
    if fraction == 0:
        return np.zeros(shape, dtype=bool)
    smooth_px = smooth_px or max(2.0, min(shape) / 10)
    field = ndimage.gaussian_filter(rng.standard_normal(shape), smooth_px, mode="wrap")
    threshold = np.quantile(field, 1 - fraction)
    return field > threshold


def apply_mask(image: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Occlude ``fraction`` of the image with smooth blobs filled with the image's mean."""
    mask = random_blob_mask(image.shape, fraction, rng)
    out = np.array(image, dtype=np.float32, copy=True)
    out[mask] = float(image.mean())
    return out


@functools.lru_cache(maxsize=1)
def contamination_textures() -> tuple[np.ndarray, ...]:
    """The shipped contamination textures as float32 arrays in [0, 1] (cached)."""
    from PIL import Image

    files = sorted(Path(CONTAMINATION_DIR).glob("*.png"))
    if not files:
        raise UsageError(f"no contamination textures found in {CONTAMINATION_DIR}")
    return tuple(normalise01(np.asarray(Image.open(f).convert("L"), dtype=np.float32))
                 for f in files)


def contamination_layer(shape: tuple[int, int], rng: np.random.Generator,
                        textures: tuple[np.ndarray, ...] | None = None) -> np.ndarray:
    """A random crop of a contamination texture (random texture, scale, flips), in [0, 1]."""
    textures = textures or contamination_textures()
    tex = textures[int(rng.integers(len(textures)))]
    ny, nx = shape
    scale = rng.uniform(0.5, 2.0)  # texture pixels per image pixel
    cy, cx = min(tex.shape[0], max(2, int(ny * scale))), min(tex.shape[1], max(2, int(nx * scale)))
    y0 = int(rng.integers(0, tex.shape[0] - cy + 1))
    x0 = int(rng.integers(0, tex.shape[1] - cx + 1))
    crop = tex[y0 : y0 + cy, x0 : x0 + cx]
    if rng.random() < 0.5:
        crop = crop[::-1]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    if rng.random() < 0.5:
        crop = crop.T
    zoomed = ndimage.zoom(crop, (ny / crop.shape[0], nx / crop.shape[1]), order=1)
    zoomed = zoomed[:ny, :nx]
    if zoomed.shape != (ny, nx):
        zoomed = np.pad(zoomed, ((0, ny - zoomed.shape[0]), (0, nx - zoomed.shape[1])), "edge")
    return normalise01(zoomed)


def add_contamination(image01: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Add a contamination texture scaled to ``strength`` × the image's range (0–1 typical).

    Amorphous hydrocarbon scatters onto the ADF detector like a thin light-element film: it adds
    a slowly varying signal on top of the lattice, which is what the additive blend models.
    """
    if strength < 0:
        raise UsageError("the contamination strength must be >= 0")
    layer = contamination_layer(image01.shape, rng)
    return (image01 + strength * layer).astype(np.float32)


@dataclass(frozen=True)
class OnlineAugment:
    """Random image-level augmentation applied to each training batch.

    Parameters
    ----------
    psnr_range_dB
        Gaussian noise with a PSNR uniform in this range (None: no noise) ...
    noise_probability
        ... applied to this fraction of the images.
    mask_probability, mask_max_fraction
        Occluding blobs covering up to ``mask_max_fraction`` of the image.
    contamination_probability, contamination_max
        Contamination texture with strength up to ``contamination_max``.
    gamma_range
        Random gamma (contrast) change; (1, 1) disables it.
    rot180
        Rotate half the images by 180° (label-preserving only for materials whose projected
        monolayer is 2-, 4- or 6-fold symmetric; the training command checks this).
    """

    psnr_range_dB: tuple[float, float] | None = None
    noise_probability: float = 0.5
    mask_probability: float = 0.0
    mask_max_fraction: float = 0.2
    contamination_probability: float = 0.0
    contamination_max: float = 0.5
    gamma_range: tuple[float, float] = (1.0, 1.0)
    rot180: bool = False

    def __post_init__(self) -> None:
        for name in ("noise_probability", "mask_probability", "contamination_probability"):
            if not (0 <= getattr(self, name) <= 1):
                raise UsageError(f"{name.replace('_', ' ')} must be between 0 and 1")
        if self.psnr_range_dB is not None:
            lo, hi = self.psnr_range_dB
            if not (0 < lo <= hi < 100):
                raise UsageError("the PSNR range must satisfy 0 < low <= high < 100 dB")
        if not (0 < self.gamma_range[0] <= self.gamma_range[1]):
            raise UsageError("the gamma range must be positive and increasing")

    def __call__(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Augmented copy of a batch (B, H, W)."""
        out = np.empty(images.shape, dtype=np.float32)
        for k, im in enumerate(images):
            x = normalise01(im)
            g = rng.uniform(*self.gamma_range)
            if g != 1.0:
                x = x**g
            if self.contamination_probability and rng.random() < self.contamination_probability:
                x = normalise01(add_contamination(x, rng.uniform(0, self.contamination_max), rng))
            if self.mask_probability and rng.random() < self.mask_probability:
                x = apply_mask(x, rng.uniform(0, self.mask_max_fraction), rng)
            if self.psnr_range_dB is not None and rng.random() < self.noise_probability:
                x = add_noise_psnr(x, rng.uniform(*self.psnr_range_dB), rng)
            if self.rot180 and rng.random() < 0.5:
                x = x[::-1, ::-1]
            out[k] = x
        return out
