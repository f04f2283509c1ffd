"""Dense (fully convolutional) SPM maps: every window of a fine grid from shared trunk passes.

A model reads a window by pooling the trunk features of the window's cells
(:meth:`stackview.inference.regressor.StackingRegressor.forward_normalised`). Neighbouring
windows at a fine stride share most of those cells, so the trunk runs once per sub-stride
offset over a whole field of the image and each window's features are averaged from the shared
feature map ("nodes" every ``step`` model pixels). Windows between nodes — a rotated frame's
grid never falls on them — take the bilinear mix of their four nodes' pooled features; the
head then reads the pooled features as it reads a window's.

For a model trained with context (``context_px`` > 0) this is the same computation as the
window mode's, which reads each window with that margin of image around it: the two maps
differ only by what lies beyond the margin and by the local (instead of per-window)
standardisation. A model trained on isolated windows is biased here (its convolutions see
the image beyond the window edges, which in training were zero padding).

The field is sampled in the frame of the window mode (:class:`stackview.inference.spm.
WindowSampler`: the same rotation, affine correction and lattice-translation fill beyond the
image) and processed in tiles, so memory stays bounded for 8k images. Coordinates as in
:mod:`stackview.inference.spm`. Torch is imported inside functions; no Qt.
"""

from __future__ import annotations

import time

import numpy as np
from scipy import ndimage

from stackview.engine.jobs import CancelToken, null_progress
from stackview.errors import UsageError
from stackview.inference.spm import SAMPLE_POINTS

#: model pixels per tile side (before the context margin): bounds the trunk's activations
TILE_PX = 768
#: the sub-pixel shifts (rows, columns) of the extra views, as the window mode's shift views
SHIFT_VIEWS = ((0.0, 0.0), (0.5, 0.0), (0.0, 0.5))
#: ``auto`` reads densely at strides below this fraction of the model's input side (window and
#: both margins): measured (benchmarks/bench_mode_crossover.py, ReS2 context model, 1024² px,
#: 2 cores) the dense map of a whole image costs 1.2-1.9 s at any stride from 0.5 to 4 nm and
#: the window mode 0.03-0.04 s a window, so they cross between 2 and 3 nm, 0.5-0.73 of the
#: 256-px input
DENSE_PAYS_BELOW = 0.6


def local_standardise(img: np.ndarray, size: int) -> np.ndarray:
    """Each pixel standardised by the mean and std of the ``size`` box around it — the dense
    counterpart of the per-window standardisation the model applies."""
    # float32 with the tile's mean removed first (no cancellation in sq − mean²), in place:
    # a tile holds ~1300² px, and float64 temporaries of it cost ~80 MB
    img = np.array(img, dtype=np.float32)
    img -= np.float32(img.mean())
    sq = ndimage.uniform_filter(img * img, size, mode="reflect")
    mean = ndimage.uniform_filter(img, size, mode="reflect")
    sq -= mean * mean
    np.maximum(sq, 0.0, out=sq)
    sq *= np.float32(size * size / max(size * size - 1, 1))
    np.sqrt(sq, out=sq)
    sq += np.float32(1e-6)
    img -= mean
    img /= sq
    return img


def dense_step_px(stride_px: float, trunk_stride: int) -> int:
    """The node spacing for a requested stride: the divisor of the trunk's stride nearest it
    (each divisor d costs (trunk_stride / d)² trunk passes)."""
    divisors = [d for d in range(1, trunk_stride + 1) if trunk_stride % d == 0]
    return min(divisors, key=lambda d: (abs(d - stride_px), -d))


def _reflect(idx: np.ndarray, n: int) -> np.ndarray:
    """Indices mirrored into 0..n-1 (numpy's 'reflect' padding)."""
    if n == 1:
        return np.zeros_like(idx)
    period = 2 * (n - 1)
    idx = np.mod(idx, period)
    return np.where(idx >= n, period - idx, idx)


class _Field:
    """Frame coordinates of windows, and fields of the image sampled on them.

    Frame coordinates are model pixels; a window is located by the frame coordinates of its
    first (top-left) pixel. Without a frame they are the resampled image's pixels; with one,
    model pixels of the frame from the image centre."""

    def __init__(self, sampler) -> None:
        self.sampler = sampler
        ny, nx = sampler.shape
        self.origin = np.array([nx / 2.0, ny / 2.0])
        if sampler.frame is not None:
            self.inverse = np.linalg.inv(sampler.to_px)

    def window_corner(self, centres_px: np.ndarray) -> np.ndarray:
        """(N, 2) frame coordinates (u, v) of each window's first pixel."""
        s = self.sampler
        if s.frame is None:
            return np.array([s.window_origin(x, y) for x, y in centres_px], dtype=float)
        w = (self.inverse @ (centres_px - self.origin).T).T
        if s.gradient is not None:  # the affine map at each centre's row, as the window mode's
            mats = s.to_px[None] + (centres_px[:, 1] - s.row0)[:, None, None] * s.gradient[None]
            w = np.linalg.solve(mats, (centres_px - self.origin)[..., None])[..., 0]
        return w - (s.patch_px - 1) / 2.0

    def sample(self, u0: float, v0: float, width: int, height: int,
               shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
        """The (height, width) field whose pixel (r, q) is at frame coordinates
        (u0 + q, v0 + r), its content moved by ``shift`` (rows, columns) model px."""
        s = self.sampler
        dy, dx = shift
        if s.frame is None:
            rows = _reflect(int(v0) + np.arange(height), s.resampled.shape[0])
            cols = _reflect(int(u0) + np.arange(width), s.resampled.shape[1])
            out = s.resampled[np.ix_(rows, cols)]
            if dy or dx:
                out = ndimage.shift(out, (dy, dx), order=3, mode="mirror")
            return np.ascontiguousarray(out, dtype=np.float32)
        # a tile of 1500² px would hold ~140 MB of sample coordinates at once: sample it a
        # band of rows (SAMPLE_POINTS) at a time
        band = max(1, SAMPLE_POINTS // max(width, 1))
        if height > band:
            return np.concatenate([self.sample(u0, v0 + r, width, min(band, height - r), shift)
                                   for r in range(0, height, band)])
        uu, vv = np.meshgrid(u0 - dx + np.arange(width), v0 - dy + np.arange(height),
                             indexing="xy")
        grid = np.vstack([uu.ravel(), vv.ravel()])
        pts = s.to_px @ grid
        if s.gradient is not None:
            rows = self.origin[1] + pts[1]
            pts = pts + ((rows - s.row0)[None, :] * (s.gradient @ grid))
        xs, ys = s._fold_inside(self.origin[0] + pts[0] - 0.5, self.origin[1] + pts[1] - 0.5)
        vals = ndimage.map_coordinates(s.coeffs, [ys, xs], order=3, prefilter=False,
                                       mode="mirror")
        return vals.reshape(height, width).astype(np.float32)


def _node_features(model, field: np.ndarray, n_rows: int, n_cols: int, step: int,
                   window_px: int, context_px: int, trunk, stride: int, dev,
                   passes: list) -> np.ndarray:
    """Pooled trunk features (n_rows, n_cols, C) of the windows whose first pixels are at
    field pixels (M + m·step, M + n·step), M the context margin."""
    import torch

    k = window_px // stride
    M = context_px
    out = None
    for dy in range(0, stride, step):
        for dx in range(0, stride, step):
            ms = np.arange(dy // step, n_rows, stride // step)
            ns = np.arange(dx // step, n_cols, stride // step)
            if len(ms) == 0 or len(ns) == 0:
                continue
            hh = (int(ms[-1]) * step - dy) + window_px + 2 * M
            ww = (int(ns[-1]) * step - dx) + window_px + 2 * M
            sub = field[dy:dy + hh, dx:dx + ww]
            assert sub.shape == (hh, ww), (sub.shape, hh, ww)
            x = torch.from_numpy(np.ascontiguousarray(sub))[None, None].to(dev)
            feats = trunk(x)  # (1, C, hh/stride, ww/stride)
            pooled = torch.nn.functional.avg_pool2d(feats, k, stride=1)[0]
            c0 = M // stride
            sel = pooled[:, c0 + (ms * step - dy) // stride][:, :, c0 + (ns * step - dx) // stride]
            sel = sel.permute(1, 2, 0).float().cpu().numpy()
            if out is None:
                out = np.empty((n_rows, n_cols, sel.shape[-1]), np.float32)
            out[np.ix_(ms, ns)] = sel
            passes.append(1)
    return out


def dense_readings(sampler, bundle, centres_px: np.ndarray, step: int,
                   n_views: int = 1, progress=null_progress,
                   cancel: CancelToken | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """Model readings (N, n) and view spread (N,) of windows centred on ``centres_px``
    (N, 2 original px) from shared trunk passes with nodes every ``step`` model pixels;
    also the number of trunk passes."""
    import torch

    from stackview.engine.devices import module_device
    from stackview.inference.predict import aggregate

    cancel = cancel or CancelToken()
    model = bundle.model
    card = bundle.card
    dev = module_device(model)
    trunk, _, stride = model.split()
    P, M = card.patch_px, card.context_px
    if P % stride:
        raise UsageError(f"the dense mode needs a window that is a multiple of {stride} px; "
                         "use the window mode")
    if stride % step:
        raise UsageError(f"the dense node spacing {step} px must divide {stride} px")
    field = _Field(sampler)
    corner = field.window_corner(np.asarray(centres_px, dtype=float).reshape(-1, 2))
    base = np.floor(corner.min(axis=0))
    t = (corner - base) / step  # fractional node index (u, v) of every window
    cell = np.floor(t + 1e-9).astype(int)
    frac = np.clip(t - cell, 0.0, 1.0)
    frac[frac < 1e-9] = 0.0
    n_u, n_v = int(cell[:, 0].max()) + 2, int(cell[:, 1].max()) + 2
    tile_nodes = max(2, TILE_PX // step)
    views = SHIFT_VIEWS[:max(1, min(n_views, len(SHIFT_VIEWS)))]
    n_out = card.regressor_spec().n_outputs
    raw = np.full((len(corner), len(views), n_out), np.nan)
    tiles = [(a, b) for a in range(0, n_v - 1, tile_nodes - 1)
             for b in range(0, n_u - 1, tile_nodes - 1)]
    passes: list = []
    size = P + 2 * M
    done = 0
    with torch.inference_mode():
        for a, b in tiles:
            cancel.check()
            rows = min(tile_nodes, n_v - a)
            cols = min(tile_nodes, n_u - b)
            mine = np.nonzero((cell[:, 1] >= a) & (cell[:, 1] < a + rows - 1)
                              & (cell[:, 0] >= b) & (cell[:, 0] < b + cols - 1))[0]
            if len(mine) == 0:
                continue
            u0 = base[0] + b * step - M
            v0 = base[1] + a * step - M
            width = (cols - 1) * step + size + stride
            height = (rows - 1) * step + size + stride
            for vi, shift in enumerate(views):
                # each pixel standardised over the image's box around it (not the tile's):
                # tiles then join without seams
                h = size // 2 + 1
                img = field.sample(u0 - h, v0 - h, width + 2 * h, height + 2 * h, shift)
                img = local_standardise(img, size)[h:-h, h:-h]
                feats = _node_features(model, img, rows, cols, step, P, M, trunk, stride,
                                       dev, passes)
                ci = cell[mine] - (b, a)
                fu, fv = frac[mine, 0:1], frac[mine, 1:2]
                mix = ((1 - fv) * (1 - fu) * feats[ci[:, 1], ci[:, 0]]
                       + (1 - fv) * fu * feats[ci[:, 1], ci[:, 0] + 1]
                       + fv * (1 - fu) * feats[ci[:, 1] + 1, ci[:, 0]]
                       + fv * fu * feats[ci[:, 1] + 1, ci[:, 0] + 1])
                for s0 in range(0, len(mine), 4096):
                    x = torch.from_numpy(np.ascontiguousarray(mix[s0:s0 + 4096], np.float32)).to(dev)
                    labels = model.decode(model.read_pooled(x))[0]
                    raw[mine[s0:s0 + 4096], vi] = labels.float().cpu().numpy()
            done += len(mine)
            progress(done, len(corner), "windows")
    space = bundle.label_space
    unc = np.zeros(len(corner))
    if len(views) == 1:
        values = np.asarray(space.canonical(raw[:, 0]), dtype=float).reshape(len(corner), n_out)
    else:
        values = np.empty((len(corner), n_out))
        for i, per in enumerate(raw):
            values[i], _, unc[i], _ = aggregate(per, space)
    return values, unc, len(passes)


def dense_map(
    image: np.ndarray,
    pixel_size_nm: float,
    bundle,
    stride_nm: float = 0.1,
    roi_nm=None,
    progress=null_progress,
    cancel: CancelToken | None = None,
    frame=None,
    n_views: int = 1,
    sampler=None,
):
    """Fully convolutional SPM map on the window mode's grid (see the module docstring).

    Without a frame a stride below the trunk's (ResNet: 32 px at the model's sampling) becomes
    its nearest divisor (16, 8 or 4 px) and the windows fall on the nodes; with a frame, or at
    a coarser stride, the grid is the window mode's at the stride asked and the nodes are the
    nearest such divisor apart. ``n_views`` > 1 adds dense passes of the image moved by half a
    pixel (the window mode's shift views) for a per-window uncertainty, at that many times the
    cost.
    """
    from stackview.inference.spm import (SpmMap, WindowSampler, _check_inputs,
                                         window_centres_nm)

    cancel = cancel or CancelToken()
    _check_inputs(image, pixel_size_nm, bundle, None, stride_nm)
    start = time.perf_counter()
    card = bundle.card
    _, _, stride = bundle.model.split()
    sampler = sampler or WindowSampler.for_model(image, pixel_size_nm, card, frame)
    stride_px = stride_nm * 10.0 / card.sampling_A
    step = dense_step_px(stride_px, stride)
    if sampler.frame is None and stride_px < stride:  # windows on whole pixels, on the nodes
        stride_nm = step * card.sampling_A / 10.0
    x_nm, y_nm = window_centres_nm(np.shape(image), pixel_size_nm, sampler, stride_nm, roi_nm)
    if len(x_nm) == 0 or len(y_nm) == 0:
        raise UsageError("no analysis window fits inside the image or region of interest")
    yy, xx = np.meshgrid(y_nm, x_nm, indexing="ij")
    centres = np.column_stack([xx.ravel(), yy.ravel()])
    values, unc, n_passes = dense_readings(sampler, bundle, centres / pixel_size_nm, step,
                                           n_views, progress, cancel)
    n_out = values.shape[-1]
    points = np.column_stack([centres, values, unc, np.zeros(len(centres))])
    names = tuple(card.label_convention()["names"])
    return SpmMap(x_nm, y_nm, values.reshape(len(y_nm), len(x_nm), n_out),
                  unc.reshape(len(y_nm), len(x_nm)), names, card.patch_nm, stride_nm, "dense",
                  points, time.perf_counter() - start,
                  extra={"trunk_passes": n_passes, "node_step_px": step,
                         "views": max(1, min(n_views, len(SHIFT_VIEWS))),
                         "context_px": card.context_px})


def supports_dense(bundle) -> bool:
    """Whether a model's dense maps equal its window maps: it was trained with context and
    its window is a whole number of trunk cells."""
    card = bundle.card
    if not card.context_px:
        return False
    try:
        _, _, stride = bundle.model.split()
    except UsageError:
        return False
    return card.patch_px % stride == 0


MODES = ("auto", "window", "dense")


def resolve_mode(mode: str, bundle, stride_nm: float, check_only: bool = False) -> str:
    """``window`` or ``dense`` for a requested mode: ``auto`` is dense for models trained with
    context where the dense map costs less than the window one (strides below
    :data:`DENSE_PAYS_BELOW` of the window with its margins), else window. ``check_only``:
    only check the name."""
    if mode not in MODES:
        raise UsageError(f"the mode must be one of {', '.join(MODES)}, not {mode!r}")
    if check_only:
        return mode
    card = bundle.card
    if mode == "window":
        return "window"
    ok = supports_dense(bundle)
    if mode == "dense" and not ok:
        raise UsageError(
            f"model {card.name} was trained on isolated windows, so its dense maps are biased "
            f"({'up to 0.9°' if card.task == 'twist' else 'about 0.15 Å'}); use --mode window, "
            "or a model trained with --context")
    if mode == "dense":
        return "dense"
    input_nm = card.input_px * card.sampling_A / 10.0
    return "dense" if ok and stride_nm < DENSE_PAYS_BELOW * input_nm else "window"
