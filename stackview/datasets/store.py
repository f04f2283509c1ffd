"""On-disk labelled datasets: a zarr group read lazily (numpy + zarr; no torch, no Qt).

Layout of ``NAME.zarr`` (zarr format 3)::

    images        (N, H, W) float16, chunked (chunk, H, W), compressed; min–max normalised
    labels        (N, n) float64 — Å (slip, Da, Db[, Dc, Dd]) or degrees (twist, theta)
    conditions/*  (N,) per-patch conditions: lattice origin, orientation, defocus, source size,
                  vacancy ratio, hole, mask, contamination, PSNR, twist registry shift, ...
    done          (n_chunks,) bool — which image chunks have been written
    attrs         provenance: format, stackview version, the full DatasetSpec (seed included),
                  label names and unit, simulator and optics, command line, creation time,
                  generation time

A dataset is written into ``.NAME.zarr.partial`` beside its target and renamed when complete, so
an interrupted or cancelled run never leaves something that looks finished; ``--resume`` continues
a partial one. :class:`PatchDataset` opens a finished dataset read-only: labels and conditions are
small and loaded, images are read chunk by chunk on demand (with a small chunk cache), so
datasets larger than memory work.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stackview.errors import UsageError

DATASET_FORMAT = "stackview-dataset/1"


def partial_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(f".{path.name}.partial")


def create_store(path: Path, n: int, patch_px: int, n_outputs: int, chunk: int,
                 labels: np.ndarray, conditions: dict[str, np.ndarray], attrs: dict):
    """Create the zarr group at ``path`` (overwriting) with labels, conditions and attributes."""
    import zarr

    if path.exists():
        shutil.rmtree(path)
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    group.create_array("images", shape=(n, patch_px, patch_px), chunks=(chunk, patch_px, patch_px),
                       dtype="float16", fill_value=0)
    lab = group.create_array("labels", shape=(n, n_outputs), chunks=(max(1, min(n, 65536)),
                             n_outputs), dtype="float64")
    lab[:] = labels
    cond = group.create_group("conditions")
    for name, values in conditions.items():
        values = np.asarray(values)
        arr = cond.create_array(name, shape=values.shape, chunks=(max(1, min(n, 65536)),),
                                dtype=values.dtype)
        arr[:] = values
    n_chunks = -(-n // chunk)
    done = group.create_array("done", shape=(n_chunks,), chunks=(n_chunks,), dtype="bool",
                              fill_value=False)
    done[:] = False
    group.attrs.update(_jsonable(attrs))
    return group


def _jsonable(value):
    return json.loads(json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist")
                                 else str(o)))


class PatchDataset:
    """A finished dataset opened read-only; implements the training ``PatchSource`` protocol.

    Parameters
    ----------
    path
        The ``.zarr`` folder.
    cache_chunks
        Number of decompressed image chunks kept in memory for random access.

    Attributes
    ----------
    labels
        (N, n) float64 labels (loaded).
    conditions
        Dict of (N,) per-patch condition arrays (loaded).
    attrs
        Provenance dict (see module docstring).
    images
        The lazy zarr array (N, H, W).
    """

    def __init__(self, path: str | os.PathLike, cache_chunks: int = 64) -> None:
        import zarr

        self.path = Path(path)
        if not self.path.exists():
            hint = ""
            if partial_path(self.path).exists():
                hint = " (an unfinished one is there: run the same command with --resume)"
            raise UsageError(f"dataset not found: {self.path}{hint}")
        try:
            group = zarr.open_group(str(self.path), mode="r")
            attrs = dict(group.attrs)
        except Exception as exc:  # zarr raises several types for a non-zarr folder
            raise UsageError(f"{self.path} is not a stackview dataset ({exc})") from None
        if attrs.get("format") != DATASET_FORMAT:
            raise UsageError(f"{self.path} is not a stackview dataset")
        self.group = group
        self.attrs = attrs
        self.images = group["images"]
        self.labels = np.asarray(group["labels"][:])
        self.conditions = {name: np.asarray(arr[:])
                           for name, arr in group["conditions"].arrays()}
        self._chunk = int(self.images.chunks[0])
        self._cache: collections.OrderedDict[int, np.ndarray] = collections.OrderedDict()
        self._cache_size = int(cache_chunks)

    # --- metadata ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __repr__(self) -> str:
        return (f"PatchDataset({str(self.path)!r}, n={len(self)}, task={self.task}, "
                f"material={self.material}, patch={self.patch_px} px at {self.sampling_A} Å/px)")

    @property
    def spec(self):
        from stackview.datasets.spec import DatasetSpec

        return DatasetSpec.from_dict(self.attrs["spec"])

    @property
    def task(self) -> str:
        return self.attrs["spec"]["task"]

    @property
    def material(self) -> str:
        return self.attrs["spec"]["material"]

    @property
    def sampling_A(self) -> float:
        return float(self.attrs["spec"]["sampling_A"])

    @property
    def patch_px(self) -> int:
        return int(self.attrs["spec"]["patch_px"])

    @property
    def label_names(self) -> list[str]:
        return list(self.attrs["label_names"])

    def summary(self) -> dict:
        """A short description for model cards and logs."""
        s = self.attrs["spec"]
        keys = ("task", "material", "layers", "family", "mode", "count", "step_A", "theta_range_deg",
                "theta_step_deg", "positions", "sampling_A", "patch_px", "optics", "orientation",
                "vacancy_range", "hole_probability", "mask_probability",
                "contamination_probability", "psnr_range_dB", "style", "style_bundle",
                "style_diverse", "physics", "seed")
        extra = {k: self.attrs[k] for k in ("cross_sections",) if k in self.attrs}
        return {"path": self.path.name, "n": len(self), **{k: s.get(k) for k in keys},
                "stackview_version": self.attrs.get("stackview_version"), **extra}

    # --- data --------------------------------------------------------------------------------
    def _read_chunk(self, k: int) -> np.ndarray:
        if k in self._cache:
            self._cache.move_to_end(k)
            return self._cache[k]
        start = k * self._chunk
        block = np.asarray(self.images[start : start + self._chunk])
        self._cache[k] = block
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return block

    def get(self, indices) -> tuple[np.ndarray, np.ndarray]:
        """Images (B, H, W) float32 and labels (B, n) of the given sample indices."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError("sample index out of range")
        out = np.empty((len(idx), *self.images.shape[1:]), dtype=np.float32)
        chunks = idx // self._chunk
        for k in np.unique(chunks):
            sel = np.nonzero(chunks == k)[0]
            block = self._read_chunk(int(k))
            out[sel] = block[idx[sel] - k * self._chunk]
        return out, self.labels[idx]

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        images, labels = self.get([index])
        return images[0], labels[0]

    def load(self):
        """All images in memory as an :class:`ArraySource` (float16 kept; mind the size)."""
        return ArraySource(np.asarray(self.images[:]), self.labels)

    def subset(self, indices) -> SubsetSource:
        return SubsetSource(self, np.asarray(indices, dtype=np.int64))

    def to_dask(self):
        """The images as a lazy dask array (one block per storage chunk)."""
        import dask.array as da

        return da.from_zarr(self.images)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.images.shape)) * 2


@dataclass
class ArraySource:
    """A patch source (:class:`stackview.inference.train.PatchSource`) over in-memory arrays
    (tests, small experiments)."""

    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        self.images = np.asarray(self.images)
        self.labels = np.asarray(self.labels, dtype=np.float64).reshape(len(self.images), -1)

    def __len__(self) -> int:
        return len(self.images)

    def get(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.images[indices], self.labels[indices]


class SubsetSource:
    """A view on some samples of a source (e.g. a validation split)."""

    def __init__(self, source, indices: np.ndarray) -> None:
        self.source = source
        self.indices = np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def get(self, indices) -> tuple[np.ndarray, np.ndarray]:
        return self.source.get(self.indices[np.asarray(indices, dtype=np.int64)])


class ConcatSource:
    """Several sources read as one (e.g. physics-noise and DRIT-styled patches of one material);
    sample ``i`` of the whole is sample ``i - offset`` of the part that holds it."""

    def __init__(self, sources) -> None:
        self.sources = list(sources)
        self.offsets = np.cumsum([0] + [len(s) for s in self.sources])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def get(self, indices) -> tuple[np.ndarray, np.ndarray]:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError("sample index out of range")
        part = np.searchsorted(self.offsets, idx, side="right") - 1
        images, labels = None, None
        for k in np.unique(part):
            sel = np.nonzero(part == k)[0]
            im, lab = self.sources[k].get(idx[sel] - self.offsets[k])
            if images is None:
                images = np.empty((len(idx), *im.shape[1:]), dtype=im.dtype)
                labels = np.empty((len(idx), *lab.shape[1:]), dtype=lab.dtype)
            images[sel], labels[sel] = im, lab
        if images is None:
            im, lab = self.sources[0].get(np.zeros(0, np.int64))
            return im, lab
        return images, labels


# What must agree for datasets to train one model together; the style and the seed may differ.
MIXABLE_KEYS = ("task", "material", "layers", "family", "sampling_A", "patch_px", "orientation", "optics")


def check_mixable(datasets) -> None:
    """Refuse, in one sentence, datasets that cannot train one model together."""
    from stackview.errors import UsageError

    first = datasets[0]
    for other in datasets[1:]:
        for key in MIXABLE_KEYS:
            a, b = first.attrs["spec"].get(key), other.attrs["spec"].get(key)
            if a != b:
                raise UsageError(
                    f"cannot mix {other.path.name} with {first.path.name}: its {key} is "
                    f"{b!r}, not {a!r}"
                )


def mixture_style(datasets) -> str:
    """The style a model card records: e.g. ``physics`` or ``physics + drit:BUNDLE``."""
    names = []
    for d in datasets:
        spec = d.attrs["spec"]
        name = spec["style"] if spec["style"] != "drit" else f"drit:{spec['style_bundle']}"
        if name not in names:
            names.append(name)
    return " + ".join(names)


def mixture_summary(datasets) -> dict:
    """The card's ``training.data`` for one dataset or a mixture: the first dataset's summary
    (its optics name the microscope) with the total size, the styles joined, and the parts."""
    parts = [d.summary() for d in datasets]
    if len(parts) == 1:
        return parts[0]
    n = sum(s["n"] for s in parts)
    return {**parts[0], "path": " + ".join(s["path"] for s in parts), "n": n, "count": n,
            "style": mixture_style(datasets), "parts": parts}


def open_dataset(path: str | os.PathLike) -> PatchDataset:
    """Open a finished dataset lazily (see :class:`PatchDataset`)."""
    return PatchDataset(path)
