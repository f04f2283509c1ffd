"""Labelled patch datasets for the stacking regressor: generation, storage, augmentation.

:class:`DatasetSpec` says what a dataset holds; :func:`generate_dataset` simulates it (dask,
locally or on a dask.distributed cluster) into a chunked zarr store with a labels table and
provenance; :func:`open_dataset` reads one lazily. Importing this package is cheap (no torch, no
dask, no zarr at import time); nothing here imports Qt.
"""

from stackview.datasets.spec import DatasetSpec
from stackview.datasets.store import PatchDataset, open_dataset


def generate_dataset(*args, **kwargs):
    """See :func:`stackview.datasets.generate.generate_dataset`."""
    from stackview.datasets.generate import generate_dataset as _generate

    return _generate(*args, **kwargs)


__all__ = ["DatasetSpec", "PatchDataset", "generate_dataset", "open_dataset"]
