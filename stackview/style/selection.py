"""Selection of the simulations closest to the experimental images (the paper's prong I).

Features of every image → t-SNE to 2-D (perplexity ≈ 12, clipped to (n − 1)/3) → k-means with
K = 2 on the embedding → the simulations that share the experimental images' cluster, ranked by
their distance (in the embedding) to the nearest experimental image, are kept.

Features. The paper uses an ImageNet-pretrained VGG16. torchvision's weights are used when they
are already in the torch hub cache (``torch.hub.get_dir()/checkpoints/vgg16-*.pth``); nothing is
ever downloaded. Otherwise an offline *spectral* feature set describes what decides whether a
simulation looks structurally like the experiment, independent of the noise style:

- the log radially averaged power spectrum (lattice periodicities, column spacing, blur);
- the angular distribution of power in the annulus of the strongest lattice reflections,
  circularly shifted to its maximum (lattice symmetry and anisotropy, rotation-invariant);
- the radii and relative strengths of the six strongest reflections (the lattice geometry);
- the grey-level histogram and moments of the image smoothed over ~2 px, which suppresses shot
  noise and keeps the relative brightness of the columns (overlapping vs staggered columns of a
  slipped bilayer differ exactly there).

Each block is centred over the set and scaled to unit root-mean-square norm, so that blocks
count equally. Images must
share one sampling (Å/px); a central crop of at most ``crop_px`` is used. The result records
which feature kind was used; the GUI and CLI show it. Numpy, scikit-learn, matplotlib; torch
only for VGG16; no Qt.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from stackview.engine.jobs import CancelToken, ProgressCallback, null_progress
from stackview.errors import UsageError
from stackview.io.atomic import atomic_path, write_text_atomic
from stackview.style.images import normalise

log = logging.getLogger(__name__)

FEATURE_KINDS = ("auto", "vgg16", "spectral")
SELECTION_FORMAT = "stackview-style-selection/1"


# ------------------------------------------------------------------------------- features
def vgg16_weights_path() -> Path | None:
    """torchvision's ImageNet VGG16 weights in the torch hub cache, if present (no download)."""
    import torch

    folder = Path(torch.hub.get_dir()) / "checkpoints"
    hits = sorted(folder.glob("vgg16-*.pth")) if folder.is_dir() else []
    hits = [p for p in hits if "bn" not in p.name]
    return hits[0] if hits else None


def _load_vgg16(path: Path):
    import torch
    from torchvision.models import vgg16

    model = vgg16(weights=None)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


def vgg16_features(
    images: Sequence[np.ndarray], weights: Path | None = None, model=None
) -> np.ndarray:
    """4096-d fc7 activations of ImageNet VGG16 for grey images (224² resize, 3 channels)."""
    import torch
    import torch.nn.functional as F

    if model is None:
        weights = weights or vgg16_weights_path()
        if weights is None:
            raise UsageError(
                "VGG16 ImageNet weights are not in the torch hub cache "
                f"({torch.hub.get_dir()}/checkpoints); use --features spectral"
            )
        model = _load_vgg16(weights)
    mean = torch.tensor([0.485, 0.456, 0.406])[None, :, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[None, :, None, None]
    out = []
    with torch.inference_mode():
        for a in images:
            x = torch.from_numpy(normalise(a))[None, None]
            x = F.interpolate(
                x, size=(224, 224), mode="bilinear", antialias=True, align_corners=False
            ).expand(-1, 3, -1, -1)
            x = (x - mean) / std
            h = torch.flatten(model.avgpool(model.features(x)), 1)
            out.append(model.classifier[:-1](h)[0].numpy())  # fc7 after ReLU/dropout (eval)
    return np.stack(out).astype(np.float64)


def _central_crop(a: np.ndarray, crop_px: int) -> np.ndarray:
    h, w = a.shape
    s = min(h, w, crop_px)
    top, left = (h - s) // 2, (w - s) // 2
    return a[top : top + s, left : left + s]


def spectral_blocks(
    image: np.ndarray, crop_px: int = 512, n_radial: int = 48, n_angular: int = 36, n_hist: int = 32
) -> dict[str, np.ndarray]:
    """The offline feature blocks of one image (see the module docstring)."""
    raw = normalise(_central_crop(np.asarray(image, np.float64), crop_px)).astype(np.float64)
    # a light blur removes most shot noise (white, all frequencies) and keeps the lattice
    a = ndimage.gaussian_filter(raw, 1.0)
    n = a.shape[0]
    win = np.hanning(n)[:, None] * np.hanning(n)[None, :]
    power = np.abs(np.fft.fftshift(np.fft.fft2((a - a.mean()) * win))) ** 2
    f = np.fft.fftshift(np.fft.fftfreq(n))
    fy, fx = np.meshgrid(f, f, indexing="ij")
    radius = np.hypot(fy, fx)
    angle = np.degrees(np.arctan2(fy, fx)) % 180.0
    # radial spectrum
    edges = np.linspace(0.0, 0.5, n_radial + 1)
    ridx = np.clip(np.digitize(radius.ravel(), edges) - 1, 0, n_radial - 1)
    radial = np.bincount(ridx, power.ravel(), n_radial) / np.maximum(
        np.bincount(ridx, minlength=n_radial), 1
    )
    radial = np.log10(radial / radial.sum() + 1e-12)
    # lattice reflections: strongest local maxima of the smoothed spectrum beyond the DC region
    ps = ndimage.gaussian_filter(power, 1.0)
    valid = (radius > 2.5 / n) & (radius < 0.5)
    peaks = (ps == ndimage.maximum_filter(ps, size=5)) & valid
    order = np.argsort(ps[peaks])[::-1]
    pr, pv = radius[peaks][order], ps[peaks][order]
    # keep one of each ±g pair (the spectrum is centrosymmetric)
    pr, pv = pr[::2][:6], pv[::2][:6]
    k = len(pr)
    pr = np.pad(pr, (0, 6 - k), constant_values=0.0)
    pv = np.pad(pv / (pv[0] if k else 1.0), (0, 6 - k), constant_values=0.0)
    peak_block = np.concatenate([np.sort(pr[:k]).tolist() + [0.0] * (6 - k), pv])
    # angular power in the annulus of the strongest reflection, rotation-normalised
    r0 = pr[0] if k else 0.1
    ring = (np.abs(radius - r0) < max(1.5 / n, 0.1 * r0)) & valid
    aidx = np.clip((angle[ring] / 180.0 * n_angular).astype(int), 0, n_angular - 1)
    angular = np.bincount(aidx, power[ring], n_angular) / np.maximum(
        np.bincount(aidx, minlength=n_angular), 1
    )
    angular = np.clip(angular - np.median(angular), 0, None)  # drop the isotropic floor
    angular = angular / max(angular.sum(), 1e-300)
    angular = np.roll(angular, -int(np.argmax(angular)))
    # intensity statistics of the lightly smoothed image
    sm = normalise(ndimage.gaussian_filter(raw, 2.0)).astype(np.float64)
    hist = np.histogram(sm, bins=n_hist, range=(0, 1))[0] / sm.size
    z = (sm - sm.mean()) / (sm.std() + 1e-12)
    stats = np.array(
        [
            sm.mean(),
            sm.std(),
            np.mean(z**3),
            np.mean(z**4),
            np.mean(sm > 0.5),
            np.std(a - sm) / (np.std(a) + 1e-12),
        ]
    )
    return {
        "radial": radial,
        "angular": angular,
        "peaks": peak_block,
        "histogram": np.concatenate([hist, stats]),
    }


def spectral_features(
    images: Sequence[np.ndarray], crop_px: int = 512, cancel: CancelToken | None = None
) -> np.ndarray:
    """Offline features of a set of images: blocks standardised over the set, equal weights."""
    blocks: dict[str, list[np.ndarray]] = {}
    for a in images:
        if cancel:
            cancel.check()
        for name, v in spectral_blocks(a, crop_px).items():
            blocks.setdefault(name, []).append(v)
    parts = []
    for vs in blocks.values():
        m = np.stack(vs)
        m = m - m.mean(0)
        # one scale per block (not per feature: near-constant features would blow up noise),
        # such that every block has unit mean squared distance from the set's mean
        parts.append(m / (np.sqrt(np.mean(np.sum(m**2, axis=1))) + 1e-12))
    return np.concatenate(parts, axis=1)


def image_features(
    images: Sequence[np.ndarray], kind: str = "auto", cancel: CancelToken | None = None
) -> tuple[np.ndarray, str, str]:
    """Features of ``images``; returns (features, kind used, a note saying why)."""
    if kind not in FEATURE_KINDS:
        raise UsageError(f"unknown feature kind '{kind}'; choose one of {', '.join(FEATURE_KINDS)}")
    path = vgg16_weights_path() if kind in ("auto", "vgg16") else None
    if kind == "vgg16" and path is None:
        vgg16_features([], None)  # raises the explanatory UsageError
    if path is not None:
        note = f"ImageNet VGG16 fc7 features (torchvision weights {path.name} from the hub cache)"
        return vgg16_features(images, path), "vgg16", note
    note = (
        "offline spectral features (radial + angular power spectrum, lattice reflections, "
        "smoothed grey-level statistics): VGG16 ImageNet weights are not on this machine"
    )
    if kind == "spectral":
        note = (
            "offline spectral features (radial + angular power spectrum, lattice "
            "reflections, smoothed grey-level statistics), as requested"
        )
    return spectral_features(images, cancel=cancel), "spectral", note


# ------------------------------------------------------------------------------- selection
@dataclass
class SelectionResult:
    """Outcome of :func:`select_simulations` (saved as JSON, plotted as PNG)."""

    feature_kind: str
    feature_note: str
    perplexity: float
    seed: int
    simulation_names: list[str]
    experimental_names: list[str]
    embedding: np.ndarray  # (n_sim + n_exp, 2), simulations first
    labels: np.ndarray  # k-means cluster of each point
    experimental_cluster: int
    distances: np.ndarray  # per simulation: embedding distance to the nearest experimental image
    chosen: list[int]  # simulation indices, nearest first
    fallback: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def chosen_names(self) -> list[str]:
        return [self.simulation_names[i] for i in self.chosen]

    def to_dict(self) -> dict:
        n = len(self.simulation_names)
        return {
            "format": SELECTION_FORMAT,
            "feature_kind": self.feature_kind,
            "feature_note": self.feature_note,
            "perplexity": self.perplexity,
            "k": 2,
            "seed": self.seed,
            "experimental_cluster": self.experimental_cluster,
            "fallback": self.fallback,
            "notes": self.notes,
            "chosen": self.chosen_names,
            "simulations": [
                {
                    "name": name,
                    "x": float(self.embedding[i, 0]),
                    "y": float(self.embedding[i, 1]),
                    "cluster": int(self.labels[i]),
                    "distance": float(self.distances[i]),
                    "chosen": i in self.chosen,
                }
                for i, name in enumerate(self.simulation_names)
            ],
            "experimental": [
                {
                    "name": name,
                    "x": float(self.embedding[n + j, 0]),
                    "y": float(self.embedding[n + j, 1]),
                    "cluster": int(self.labels[n + j]),
                }
                for j, name in enumerate(self.experimental_names)
            ],
        }

    def save_json(self, path: str | os.PathLike) -> None:
        write_text_atomic(path, json.dumps(self.to_dict(), indent=1))

    def plot(self, path: str | os.PathLike) -> None:
        """Scatter plot of the t-SNE embedding (PNG, written atomically)."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib.figure import Figure

        n = len(self.simulation_names)
        fig = Figure(figsize=(5.5, 4.5), dpi=120)
        ax = fig.add_subplot()
        sims, exps = self.embedding[:n], self.embedding[n:]
        for k, colour in ((0, "tab:blue"), (1, "tab:orange")):
            mine = self.labels[:n] == k
            tag = " (experimental)" if k == self.experimental_cluster else ""
            ax.scatter(
                sims[mine, 0],
                sims[mine, 1],
                c=colour,
                s=22,
                alpha=0.7,
                label=f"simulations, cluster {k}{tag}",
            )
        if self.chosen:
            ax.scatter(
                sims[self.chosen, 0],
                sims[self.chosen, 1],
                s=70,
                facecolors="none",
                edgecolors="k",
                linewidths=1.0,
                label="chosen",
            )
        ax.scatter(
            exps[:, 0],
            exps[:, 1],
            marker="*",
            s=220,
            c="tab:red",
            edgecolors="k",
            label="experimental",
        )
        ax.set_title(
            f"t-SNE ({self.feature_kind} features, perplexity {self.perplexity:g}), k-means K = 2",
            fontsize=9,
        )
        ax.set_xlabel("t-SNE 1")
        ax.set_ylabel("t-SNE 2")
        ax.legend(fontsize=8, loc="best")
        fig.tight_layout()
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, format="png")


def load_selection(path: str | os.PathLike) -> dict:
    """Read a selection JSON written by :meth:`SelectionResult.save_json`."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"selection file not found: {path}")
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("format") != SELECTION_FORMAT:
        raise UsageError(f"{path.name} is not a stackview style selection")
    return data


def select_simulations(
    simulations: Sequence[np.ndarray],
    experimental: Sequence[np.ndarray],
    *,
    simulation_names: Sequence[str] | None = None,
    experimental_names: Sequence[str] | None = None,
    features: str = "auto",
    perplexity: float = 12.0,
    keep: float | None = None,
    min_keep: int = 1,
    seed: int = 0,
    cancel: CancelToken | None = None,
) -> SelectionResult:
    """Choose the simulations closest to the experimental images (t-SNE + k-means, K = 2).

    Parameters
    ----------
    simulations, experimental
        2-D images at one common sampling.
    features
        ``"auto"`` (VGG16 when its weights are cached, else spectral), ``"vgg16"`` or
        ``"spectral"``.
    perplexity
        t-SNE perplexity (paper: 12), clipped to (n − 1) / 3 for small sets (at larger values
        all affinities become nearly uniform; the paper's 44+ images keep 12).
    keep
        Keep at most this many (≥ 1) or this fraction (< 1) of the simulations, nearest first;
        ``None`` keeps the whole experimental cluster.
    min_keep
        If the experimental images' cluster holds fewer simulations, the ``min_keep`` nearest
        simulations are kept instead and ``fallback`` is set.
    seed
        Seeds t-SNE and k-means.
    """
    from sklearn.cluster import KMeans
    from sklearn.manifold import TSNE

    ns, ne = len(simulations), len(experimental)
    if ns < 2 or ne < 1:
        raise UsageError("selection needs at least two simulations and one experimental image")
    if ns + ne < 4:
        raise UsageError("selection needs at least four images in total for t-SNE")
    feats, kind, note = image_features([*simulations, *experimental], features, cancel)
    # perplexity ≥ n/3 makes every affinity nearly uniform and the embedding meaningless;
    # clip it as Rtsne does (3 · perplexity ≤ n − 1). The paper's 41–119 images keep 12.
    perp = float(max(1.0, min(perplexity, (ns + ne - 1) / 3)))
    # exact gradients for the few hundred images a selection sees: deterministic, and fast
    # (Barnes-Hut's OpenMP loop crawls once torch's OpenMP runtime is loaded in the process)
    method = "exact" if ns + ne <= 1500 else "barnes_hut"
    from threadpoolctl import threadpool_limits

    # one thread: scikit-learn's OpenMP runtime can hang in a worker thread of a process whose
    # other threads have run torch's (seen in the GUI: selection after an analysis never ended)
    with threadpool_limits(limits=1):
        embedding = TSNE(
            n_components=2,
            perplexity=perp,
            init="pca",
            learning_rate="auto",
            method=method,
            random_state=seed,
        ).fit_transform(feats)
        labels = KMeans(n_clusters=2, n_init=10, random_state=seed).fit_predict(embedding)
    exp_labels = labels[ns:]
    counts = np.bincount(exp_labels, minlength=2)
    if counts[0] == counts[1]:  # tie: the cluster whose sims are nearest the exp centroid
        centre = embedding[ns:].mean(0)
        d0 = np.linalg.norm(embedding[:ns][labels[:ns] == 0] - centre, axis=1)
        d1 = np.linalg.norm(embedding[:ns][labels[:ns] == 1] - centre, axis=1)
        exp_cluster = (
            0 if (d0.min() if len(d0) else np.inf) <= (d1.min() if len(d1) else np.inf) else 1
        )
    else:
        exp_cluster = int(np.argmax(counts))
    dist = np.linalg.norm(embedding[:ns, None, :] - embedding[None, ns:, :], axis=2).min(1)
    order = np.argsort(dist, kind="stable")
    in_cluster = [int(i) for i in order if labels[i] == exp_cluster]
    notes = []
    fallback = len(in_cluster) < min_keep
    if fallback:
        in_cluster = [int(i) for i in order[:min_keep]]
        notes.append(
            f"the experimental cluster held fewer than {min_keep} simulations; "
            f"kept the {min_keep} nearest instead"
        )
        log.warning(notes[-1])
    chosen = in_cluster
    if keep is not None:
        if keep <= 0:
            raise UsageError(f"keep must be positive, not {keep}")
        limit = int(round(keep * ns)) if keep < 1 else int(keep)
        chosen = chosen[: max(1, limit)]
    sim_names = list(simulation_names or [f"sim{i}" for i in range(ns)])
    exp_names = list(experimental_names or [f"exp{j}" for j in range(ne)])
    log.info("selection (%s features): %d of %d simulations chosen", kind, len(chosen), ns)
    return SelectionResult(
        kind,
        note,
        perp,
        seed,
        sim_names,
        exp_names,
        embedding,
        labels,
        exp_cluster,
        dist,
        chosen,
        fallback,
        notes,
    )


def select_files(
    simulation_paths: Sequence[str | os.PathLike],
    experimental_paths: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    simulation_sampling_A: float | None = None,
    experimental_sampling_A: float | list[float | None] | None = None,
    progress: ProgressCallback = null_progress,
    cancel: CancelToken | None = None,
    **kwargs,
) -> SelectionResult:
    """Job function behind ``style select``: read files, select, write ``selection.json`` and
    ``selection.png`` in ``out_dir``.

    Experimental images are resampled to the simulations' sampling when both are known.
    """
    from stackview.style.images import load_normalised, read_grey

    cancel = cancel or CancelToken()
    total = len(simulation_paths) + len(experimental_paths) + 1
    sims, exps = [], []
    sim_A = simulation_sampling_A
    for i, p in enumerate(simulation_paths):
        cancel.check()
        if sim_A is None:
            sim_A = read_grey(p)[1]
        sims.append(load_normalised(p, sampling_A=simulation_sampling_A)[0])
        progress(i + 1, total, Path(p).name)
    for j, p in enumerate(experimental_paths):
        cancel.check()
        own = (experimental_sampling_A[j] if isinstance(experimental_sampling_A, (list, tuple))
               else experimental_sampling_A)
        if own is None:
            own = read_grey(p)[1]
        target = sim_A if (own is not None and sim_A is not None) else None
        if target is None:
            log.warning("sampling of %s or of the simulations unknown: used as is", Path(p).name)
        exps.append(load_normalised(p, sampling_A=own, target_A=target)[0])
        progress(len(sims) + j + 1, total, Path(p).name)
    result = select_simulations(
        sims,
        exps,
        simulation_names=[str(p) for p in simulation_paths],
        experimental_names=[str(p) for p in experimental_paths],
        cancel=cancel,
        **kwargs,
    )
    out_dir = Path(out_dir)
    result.save_json(out_dir / "selection.json")
    result.plot(out_dir / "selection.png")
    progress(total, total, "done")
    return result
