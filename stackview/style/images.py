"""Grey-image helpers for style transfer: reading, min–max normalisation, resampling, PNG output.

Images are 2-D float32 numpy arrays. :func:`read_grey` wraps the project's readers
(:mod:`stackview.io.readers`) and returns the image with its sampling in Å/px when the file
records one, else ``None``. Everything written goes through :func:`stackview.io.atomic.atomic_path`.
No torch and no Qt here.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from scipy import ndimage

from stackview.errors import UsageError
from stackview.io.atomic import atomic_path

log = logging.getLogger(__name__)

#: file suffixes :func:`read_grey` understands (those of :mod:`stackview.io.readers`)
IMAGE_SUFFIXES = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".tif",
    ".tiff",
    ".npy",
    ".dm3",
    ".dm4",
    ".emd",
    ".ser",
    ".mrc",
)


def read_grey(path: str | os.PathLike) -> tuple[np.ndarray, float | None]:
    """Read a grey image as float32 and its sampling in Å/px (``None`` when the file has none).

    Delegates to :func:`stackview.io.readers.read_image` (TIFF, PNG/JPEG/BMP, DM3/DM4, EMD,
    SER, MRC, npy; stacks averaged, colour converted to grey).

    Raises
    ------
    UsageError
        When the file is missing, unsupported or not a usable 2-D image.
    """
    from stackview.io.readers import read_image

    loaded = read_image(path)
    for note in loaded.notes:
        log.info("%s: %s", Path(path).name, note)
    sampling_A = None if loaded.pixel_size_nm is None else 10.0 * loaded.pixel_size_nm
    return np.ascontiguousarray(loaded.data, dtype=np.float32), sampling_A


def normalise(image: np.ndarray, clip_percentile: float = 0.0) -> np.ndarray:
    """Min–max normalise to [0, 1] (the paper's normalisation), as float32.

    Parameters
    ----------
    image
        2-D array.
    clip_percentile
        When positive, the minimum and maximum are the ``clip_percentile`` and
        ``100 - clip_percentile`` percentiles and values outside are clipped (robust to hot
        pixels); 0 is the plain min–max of the paper.
    """
    image = np.asarray(image, dtype=np.float32)
    if clip_percentile > 0:
        lo, hi = np.percentile(image, [clip_percentile, 100 - clip_percentile])
    else:
        lo, hi = float(image.min()), float(image.max())
    if not np.isfinite(lo) or not np.isfinite(hi):
        raise UsageError("the image contains NaN or infinite values")
    if hi - lo <= 0:
        return np.zeros_like(image)
    return np.clip((image - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def resample(image: np.ndarray, factor: float) -> np.ndarray:
    """Resize ``image`` by ``factor`` (new side ≈ old side × factor), anti-aliased when shrinking.

    To go from sampling ``s_in`` to ``s_out`` (Å/px) use ``factor = s_in / s_out``.
    """
    if factor <= 0:
        raise UsageError(f"resampling factor must be positive, not {factor}")
    if abs(factor - 1.0) < 1e-6:
        return np.asarray(image, dtype=np.float32)
    image = np.asarray(image, dtype=np.float32)
    if factor < 1:
        image = ndimage.gaussian_filter(image, sigma=(1 / factor - 1) / 2)  # as skimage
    shape = tuple(max(1, int(round(n * factor))) for n in image.shape)
    zoom = tuple(s / n for s, n in zip(shape, image.shape, strict=True))
    return ndimage.zoom(image, zoom, order=1, mode="reflect", grid_mode=True).astype(np.float32)


def to_sampling(image: np.ndarray, sampling_A: float | None, target_A: float | None) -> np.ndarray:
    """Resample from ``sampling_A`` to ``target_A`` Å/px; unchanged when either is ``None``."""
    if sampling_A is None or target_A is None:
        return np.asarray(image, dtype=np.float32)
    return resample(image, sampling_A / target_A)


def load_normalised(
    path: str | os.PathLike,
    sampling_A: float | None = None,
    target_A: float | None = None,
    clip_percentile: float = 0.0,
) -> tuple[np.ndarray, float | None]:
    """Read, resample to ``target_A`` and min–max normalise an image.

    Parameters
    ----------
    sampling_A
        The file's sampling in Å/px; overrides the file's own calibration when given.
    target_A
        Sampling to resample to (e.g. a style model's); ``None`` keeps the file's pixels.

    Returns
    -------
    image, sampling_A
        The [0, 1] image and its sampling after resampling (``None`` if unknown).
    """
    image, file_A = read_grey(path)
    own_A = sampling_A if sampling_A is not None else file_A
    if target_A is not None and own_A is None:
        raise UsageError(
            f"the sampling of '{Path(path).name}' is unknown: give it in nm/px "
            "(the file has no calibration)"
        )
    image = to_sampling(image, own_A, target_A)
    return normalise(image, clip_percentile), (target_A if target_A is not None else own_A)


def list_images(paths: list[str | os.PathLike]) -> list[Path]:
    """Expand files and folders into a sorted list of image files (folders: direct children)."""
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            out.extend(sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES))
        elif p.is_file():
            out.append(p)
        else:
            raise UsageError(f"no such file or folder: {p}")
    if not out:
        raise UsageError("no images found in " + ", ".join(str(p) for p in paths))
    return out


def save_png(path: str | os.PathLike, image: np.ndarray, normalise_image: bool = False) -> None:
    """Write a [0, 1] grey image as an 8-bit PNG, atomically."""
    from PIL import Image

    image = normalise(image) if normalise_image else np.clip(image, 0, 1)
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(np.round(image * 255).astype(np.uint8)).save(tmp, format="PNG")


def save_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write an image atomically by suffix: ``.png`` 8-bit, ``.tif``/``.tiff`` float32,
    ``.npy`` float32."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".png":
        save_png(path, image)
    elif suffix in (".tif", ".tiff"):
        import tifffile

        with atomic_path(path) as tmp:
            tifffile.imwrite(tmp, np.asarray(image, np.float32))
    elif suffix == ".npy":
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, np.asarray(image, np.float32), allow_pickle=False)
    else:
        raise UsageError(f"cannot write '{path.name}': use .png, .tif or .npy")
