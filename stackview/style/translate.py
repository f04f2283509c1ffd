"""Apply a trained style model: simulated images of any size → the microscope's style.

:class:`StyleTranslator` wraps a translator network and its card. Attribute (style) codes are
chosen explicitly: the card's reference code (the mean code of the training experimental
images; the default), a code given by the caller, the code of a given experimental image, or a
random code drawn from N(0, 1) with a seed (diversity). Translation is deterministic for a given
code. Images up to ``tile_px`` are translated whole; larger ones in overlapping tiles whose
origins are multiples of the network's stride and whose outputs are blended with weights that
are zero in a margin at inner tile edges and ramp linearly to one across the rest of the
overlap (a partition of unity), so no seam appears. Inputs are min–max normalised to [0, 1]
(the paper's normalisation); outputs are in [0, 1]. Torch here; no Qt.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from stackview.engine.jobs import CancelToken, ProgressCallback, null_progress
from stackview.errors import UsageError
from stackview.style.images import normalise, resample
from stackview.style.networks import (
    CONTENT_STRIDE,
    DRIT,
    freeze_statistics,
    receptive_radius_px,
    record_statistics,
    release_statistics,
)

log = logging.getLogger(__name__)


def _ramp(n: int, overlap_lo: int, overlap_hi: int) -> np.ndarray:
    """1-D blending weight of a tile of length ``n`` whose low/high edges overlap neighbours by
    ``overlap_lo``/``overlap_hi`` pixels (0 at image borders): zero in the outer third of an
    overlap (where the tile lacks context), a linear ramp across the middle third, one beyond.
    Two tiles overlapping by ``o`` get weights summing to one across the overlap."""
    w = np.ones(n, dtype=np.float64)
    d = np.arange(n, dtype=np.float64)
    for overlap, dist in ((overlap_lo, d), (overlap_hi, n - 1 - d)):
        if overlap > 0:
            margin = overlap // 3
            span = max(1.0, overlap - 2 * margin)
            w = np.minimum(w, np.clip((dist - margin + 0.5) / span, 0.0, 1.0))
    return w


def default_overlap_px(model: DRIT) -> int:
    """Tile overlap for a model: three times ~3/4 of its receptive-field radius, so that the
    discarded outer third covers the pixels that see the tile edge (multiple of the stride)."""
    margin = int(np.ceil(0.75 * receptive_radius_px(model.cfg)))
    return int(np.ceil(3 * margin / CONTENT_STRIDE) * CONTENT_STRIDE)


def _tile_starts(n: int, tile: int, overlap: int) -> list[int]:
    """Tile origins along an axis of length ``n``: multiples of the network stride; the last
    tile may run past ``n`` by less than the stride (the image is padded)."""
    if n <= tile:
        return [0]
    step = max(CONTENT_STRIDE, (tile - overlap) // CONTENT_STRIDE * CONTENT_STRIDE)
    last = -(-(n - tile) // CONTENT_STRIDE) * CONTENT_STRIDE
    return [*range(0, last, step), last]


class StyleTranslator:
    """A style model ready to translate images.

    Parameters
    ----------
    model
        DRIT network (discriminators not needed), put in eval mode.
    card
        The bundle card (``sampling_A``, ``reference_attribute``, …); ``{}`` for a bare model.
    """

    def __init__(
        self, model: DRIT, card: dict | None = None, bf16: bool = False, device: str | None = "cpu"
    ) -> None:
        from stackview.engine.devices import resolve_device

        self.device = resolve_device(device)
        self.model = model.eval().to(self.device)
        self.bf16 = bool(bf16)
        self.card = dict(card or {})
        self.attr_dim = model.cfg.attr_dim
        ref = self.card.get("reference_attribute")
        self.reference = (
            np.asarray(ref, np.float32) if ref is not None else np.zeros(self.attr_dim, np.float32)
        )
        self.sampling_A: float | None = self.card.get("sampling_A", model.cfg.sampling_A)

    @classmethod
    def from_bundle(
        cls, path: str | os.PathLike, bf16: bool = False, device: str | None = "cpu"
    ) -> StyleTranslator:
        """Load a style bundle (see :mod:`stackview.style.bundle`).

        ``bf16`` runs the convolutions in bfloat16 (autocast): ~1.6× faster on CPUs with
        native bf16 (AVX512-BF16/AMX), outputs differ by up to ~1 % of the range. ``device``:
        ``"cpu"`` (default), ``"cuda"`` or ``None``/``"auto"`` (CUDA when available).
        """
        from stackview.style.bundle import load_bundle

        model, card = load_bundle(path)
        return cls(model, card, bf16=bf16, device=device)

    # attributes -------------------------------------------------------------------------------
    def attribute(
        self,
        seed: int | None = None,
        code: Sequence[float] | None = None,
        reference_image: np.ndarray | None = None,
    ) -> np.ndarray:
        """The attribute code to render with.

        Parameters
        ----------
        seed
            Draw a random code from N(0, 1) with this seed (diverse styles).
        code
            Use this code (length ``attr_dim``).
        reference_image
            Use the posterior mean code of this experimental image ([0, 1], model sampling).

        With none given, the card's reference code (the training images' mean style).
        """
        given = sum(v is not None for v in (seed, code, reference_image))
        if given > 1:
            raise UsageError("give at most one of a seed, an attribute code or a reference image")
        if code is not None:
            z = np.asarray(code, np.float32).reshape(-1)
            if z.size != self.attr_dim:
                raise UsageError(f"the attribute code needs {self.attr_dim} values, not {z.size}")
            return z
        if seed is not None:
            return np.random.default_rng(seed).standard_normal(self.attr_dim).astype(np.float32)
        if reference_image is not None:
            x = (torch.from_numpy(normalise(reference_image))[None, None] * 2 - 1).to(self.device)
            with torch.inference_mode():
                mu, _ = self.model.attr_b(x)
            return mu[0].cpu().numpy()
        return self.reference.copy()

    # translation ------------------------------------------------------------------------------
    def _run(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Network on one [0, 1] image whose sides are multiples of the stride."""
        t = (torch.from_numpy(np.ascontiguousarray(x, np.float32))[None, None] * 2 - 1).to(
            self.device
        )
        zt = torch.from_numpy(np.asarray(z, np.float32))[None].to(self.device)
        with (
            torch.inference_mode(),
            torch.autocast(self.device.type, torch.bfloat16, enabled=self.bf16),
        ):
            y = self.model.translate(t, zt, "a").float()
        return ((y[0, 0].cpu().numpy() + 1) / 2).astype(np.float32)

    def _run_padded(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        h, w = x.shape
        ph, pw = (-h) % CONTENT_STRIDE, (-w) % CONTENT_STRIDE
        if ph or pw:
            x = np.pad(x, ((0, ph), (0, pw)), mode="reflect")
        return self._run(x, z)[:h, :w]

    def translate(
        self,
        image: np.ndarray,
        *,
        seed: int | None = None,
        code: Sequence[float] | None = None,
        tile_px: int = 1024,
        overlap_px: int | None = None,
        input_sampling_A: float | None = None,
        normalise_input: bool = True,
        stats_px: int | None = None,
    ) -> np.ndarray:
        """Translate one simulated image into the experimental style.

        Parameters
        ----------
        image
            2-D simulated image (any size, any range; min–max normalised first).
        seed, code
            Attribute choice (see :meth:`attribute`); default the reference code.
        tile_px, overlap_px
            Images larger than ``tile_px`` on a side are translated in tiles of this size
            overlapping by ``overlap_px`` pixels (default: from the receptive field, see
            :func:`default_overlap_px`) and blended.
        input_sampling_A
            Sampling of ``image`` in Å/px; when it differs from the model's the image is
            resampled to the model's sampling and the result back to the input's shape.
        normalise_input
            Min–max normalise the input first (the paper's normalisation).
        stats_px
            Tiled images only: side of the central crop whose normalisation statistics all
            tiles share (default ``tile_px``; larger is more faithful and costs memory).

        Returns
        -------
        The translated image, float32 in [0, 1], same shape as ``image``.
        """
        image = np.asarray(image, np.float32)
        if image.ndim != 2:
            raise UsageError(f"translate needs a 2-D image, not shape {image.shape}")
        if min(image.shape) < 4 * CONTENT_STRIDE:
            raise UsageError(
                f"the image is too small to translate ({image.shape[0]}×"
                f"{image.shape[1]} px; at least {4 * CONTENT_STRIDE} px a side)"
            )
        if tile_px < 8 * CONTENT_STRIDE or tile_px % CONTENT_STRIDE:
            raise UsageError(
                f"tile_px must be a multiple of {CONTENT_STRIDE} and at least "
                f"{8 * CONTENT_STRIDE}, not {tile_px}"
            )
        if overlap_px is None:
            overlap_px = min(default_overlap_px(self.model), tile_px - 2 * CONTENT_STRIDE)
        if not 0 <= overlap_px <= tile_px - 2 * CONTENT_STRIDE:
            raise UsageError(
                f"overlap_px must lie in [0, {tile_px - 2 * CONTENT_STRIDE}], not {overlap_px}"
            )
        z = self.attribute(seed=seed, code=code)
        x = normalise(image) if normalise_input else image
        shape = x.shape
        rescale = (
            input_sampling_A is not None
            and self.sampling_A is not None
            and abs(input_sampling_A / self.sampling_A - 1) > 1e-3
        )
        if rescale:
            x = resample(x, input_sampling_A / self.sampling_A)
        y = self._tiled(x, z, tile_px, overlap_px, stats_px)
        if rescale:
            from scipy import ndimage

            zoom = (shape[0] / y.shape[0], shape[1] / y.shape[1])
            y = ndimage.zoom(y, zoom, order=1, mode="reflect", grid_mode=True)[
                : shape[0], : shape[1]
            ]
        return np.clip(y, 0, 1).astype(np.float32)

    def _tiled(
        self, x: np.ndarray, z: np.ndarray, tile: int, overlap: int, stats_px: int | None = None
    ) -> np.ndarray:
        h, w = x.shape
        if h <= tile and w <= tile:
            return self._run_padded(x, z)
        # one set of normalisation statistics for all tiles (from a central crop), so that the
        # network is translation-equivariant across tiles and blending leaves no seam
        sp = stats_px or tile
        sh, sw = min(sp, h), min(sp, w)
        top = (h - sh) // 2 // CONTENT_STRIDE * CONTENT_STRIDE
        left = (w - sw) // 2 // CONTENT_STRIDE * CONTENT_STRIDE
        record_statistics(self.model)
        try:
            self._run_padded(x[top : top + sh, left : left + sw], z)
            freeze_statistics(self.model)
            return self._blend_tiles(x, z, tile, overlap)
        finally:
            release_statistics(self.model)

    def _blend_tiles(self, x: np.ndarray, z: np.ndarray, tile: int, overlap: int) -> np.ndarray:
        h, w = x.shape
        # tile origins on the stride grid, so every tile sees the same pixel phase
        th, tw = min(tile, h), min(tile, w)
        rows, cols = _tile_starts(h, tile, overlap), _tile_starts(w, tile, overlap)
        ph, pw = rows[-1] + th - h, cols[-1] + tw - w
        xp = np.pad(x, ((0, ph), (0, pw)), mode="reflect") if (ph or pw) else x
        out = np.zeros(xp.shape, np.float64)
        norm = np.zeros(xp.shape, np.float64)
        for i, r in enumerate(rows):
            wr = _ramp(
                th,
                rows[i - 1] + th - r if i else 0,
                r + th - rows[i + 1] if i + 1 < len(rows) else 0,
            )
            for j, c in enumerate(cols):
                wc = _ramp(
                    tw,
                    cols[j - 1] + tw - c if j else 0,
                    c + tw - cols[j + 1] if j + 1 < len(cols) else 0,
                )
                y = self._run_padded(xp[r : r + th, c : c + tw], z)
                wt = wr[:, None] * wc[None, :]
                out[r : r + th, c : c + tw] += wt * y
                norm[r : r + th, c : c + tw] += wt
        return (out / np.maximum(norm, 1e-12))[:h, :w].astype(np.float32)

    def translate_many(
        self,
        images: Iterable[np.ndarray],
        *,
        seed: int | None = None,
        code: Sequence[float] | None = None,
        diverse: bool = False,
        progress: ProgressCallback = null_progress,
        cancel: CancelToken | None = None,
        total: int | None = None,
        **kwargs,
    ) -> list[np.ndarray]:
        """Translate several images (an array stack (N, H, W) or any iterable of 2-D images).

        With ``diverse`` each image gets its own random attribute code, drawn from a stream
        seeded by ``seed`` (reproducible diversity); otherwise all share one code.
        """
        cancel = cancel or CancelToken()
        images = list(images) if total is None else images
        total = len(images) if total is None else total
        rng = np.random.default_rng(seed) if diverse else None
        out = []
        progress(0, total, "translating")
        for i, im in enumerate(images):
            cancel.check()
            if rng is not None:
                z = rng.standard_normal(self.attr_dim).astype(np.float32)
                out.append(self.translate(im, code=z, **kwargs))
            else:
                out.append(self.translate(im, seed=seed, code=code, **kwargs))
            progress(i + 1, total, f"image {i + 1}")
        return out


def translate_files(
    translator: StyleTranslator,
    inputs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    suffix: str = ".png",
    seed: int | None = None,
    diverse: bool = False,
    input_sampling_A: float | None = None,
    progress: ProgressCallback = null_progress,
    cancel: CancelToken | None = None,
    **kwargs,
) -> list[Path]:
    """Translate image files (or ``.npy``/``.tif`` stacks) into ``out_dir``; job function.

    Single images keep their stem with ``suffix``; a stack ``S`` of N images becomes
    ``S.npy``/``S.tif`` of N translated images (stacks are written in their own format).
    Each file's own calibration (dm3) is used unless ``input_sampling_A`` is given.
    """
    from stackview.style.images import read_grey, save_image

    cancel = cancel or CancelToken()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed) if diverse else None
    written = []
    progress(0, len(inputs), "translating")
    for k, path in enumerate(inputs):
        cancel.check()
        path = Path(path)
        stack = None
        if path.suffix.lower() in (".npy", ".tif", ".tiff"):
            data = (
                np.load(path, allow_pickle=False)
                if path.suffix.lower() == ".npy"
                else __import__("tifffile").imread(path)
            )
            if data.ndim == 3 and data.shape[-1] not in (3, 4):
                stack = data.astype(np.float32)
        sampling = input_sampling_A
        if stack is None:
            image, file_A = read_grey(path)
            sampling = sampling if sampling is not None else file_A
            stack_in = [image]
        else:
            stack_in = list(stack)
        results = []
        for image in stack_in:
            z = rng.standard_normal(translator.attr_dim).astype(np.float32) if rng else None
            results.append(
                translator.translate(
                    image, code=z, seed=None if rng else seed, input_sampling_A=sampling, **kwargs
                )
            )
        if stack is None:
            target = out_dir / (path.stem + suffix)
            save_image(target, results[0])
        else:
            target = out_dir / path.name
            arr = np.stack(results).astype(np.float32)
            from stackview.io.atomic import atomic_path

            with atomic_path(target) as tmp:
                if target.suffix.lower() == ".npy":
                    with open(tmp, "wb") as fh:
                        np.save(fh, arr, allow_pickle=False)
                else:
                    __import__("tifffile").imwrite(tmp, arr)
        written.append(target)
        progress(k + 1, len(inputs), path.name)
    log.info("translated %d file(s) into %s", len(written), out_dir)
    return written
