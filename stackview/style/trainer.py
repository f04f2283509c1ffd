"""Training of a DRIT style model: optimisers, schedule, checkpoints, resume, previews.

:class:`StyleTrainer` owns the networks, the three Adam optimisers (encoders + generators,
domain discriminators, content discriminator; lr 1e-4, betas (0.5, 0.999)), the augmentation
random stream and the loss history. One *iteration* is one encoder/generator update preceded by
one discriminator update and ``content_dis_steps`` extra content-discriminator updates on fresh
batches (DRIT updates the content discriminator alone on two of every three batches). The
learning rate is constant for ``decay_start`` of the run, then falls linearly to 0.

Checkpoints are one safetensors file holding the weights, the optimiser moments and the torch
random state, with the scalars (iteration, configuration, numpy random state, optimiser
hyper-parameters, history) as JSON in its metadata; a JSON copy is written beside it for people.
Nothing is pickled, every file is written atomically, and a resumed run continues exactly as an
uninterrupted one would (same weights, same random streams). :func:`train_style` is the job
function (progress callback, cancel token) that the CLI and GUI call. Torch here; no Qt.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from stackview import __version__
from stackview.engine.devices import resolve_device
from stackview.engine.jobs import CancelToken, ProgressCallback, null_progress
from stackview.errors import Cancelled, UsageError
from stackview.io.atomic import atomic_path, write_text_atomic
from stackview.style.augment import AffineAugment
from stackview.style.config import StyleConfig
from stackview.style.losses import (
    content_discriminator_loss,
    discriminator_losses,
    forward,
    generator_step_losses,
)
from stackview.style.networks import DRIT

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.safetensors"
CHECKPOINT_FORMAT = "stackview-style-checkpoint/1"


def _requires_grad(modules: Sequence[torch.nn.Module], flag: bool) -> None:
    for m in modules:
        for p in m.parameters():
            p.requires_grad_(flag)


class StyleTrainer:
    """DRIT training state on in-memory images.

    Parameters
    ----------
    cfg
        Network, loss and optimiser configuration.
    simulations, experimental
        2-D float images in [0, 1] at the model's sampling: domain A (noise-free simulations,
        ideally chosen by :mod:`stackview.style.selection`) and domain B (the microscope).
    seed
        Seeds the augmentation stream and torch's random state (weights, noise, attributes).
    device
        ``"cpu"``, ``"cuda"`` (``"cuda:N"``) or ``None``/``"auto"``: CUDA when available.
    """

    def __init__(
        self,
        cfg: StyleConfig,
        simulations: Sequence[np.ndarray],
        experimental: Sequence[np.ndarray],
        seed: int = 0,
        device: str | None = None,
    ) -> None:
        if not simulations or not experimental:
            raise UsageError("training needs at least one simulated and one experimental image")
        self.cfg = cfg
        self.seed = int(seed)
        self.simulations = [np.asarray(a, np.float32) for a in simulations]
        self.experimental = [np.asarray(a, np.float32) for a in experimental]
        self.augment = AffineAugment(
            cfg.image_px, cfg.rotation_deg, cfg.crop_fraction, cfg.flip_probability
        )
        small = [
            a.shape
            for a in (*self.simulations, *self.experimental)
            if min(a.shape) < self.augment.footprint_px()
        ]
        if small:
            log.warning(
                "%d training image(s) are smaller than a patch's %.0f px footprint; "
                "edges will be mirrored",
                len(small),
                self.augment.footprint_px(),
            )
        torch.manual_seed(self.seed)
        self.rng = np.random.default_rng(self.seed)
        self.device = resolve_device(device)
        self.model = DRIT(cfg).to(self.device)
        self.model.train()
        betas = (cfg.beta1, cfg.beta2)
        self.optimizers = {
            "gen": torch.optim.Adam(self.model.generator_parameters(), cfg.lr, betas),
            "dis": torch.optim.Adam(self.model.discriminator_parameters(), cfg.lr, betas),
            "content": torch.optim.Adam(self.model.dis_content.parameters(), cfg.lr, betas),
        }
        self._alone_params = [
            p for m in (self.model.content, self.model.gen) for p in m.parameters()
        ]
        self.iteration = 0
        self.seconds = 0.0
        self.history: list[dict[str, float]] = []
        self._running: dict[str, float] = {}
        self._running_n = 0

    # schedule ---------------------------------------------------------------------------------
    def lr_at(self, iteration: int) -> float:
        """Learning rate for ``iteration`` (0-based): constant, then linear decay to 0."""
        total = self.cfg.iterations
        start = int(round(self.cfg.decay_start * total))
        if iteration < start or total == start:
            return self.cfg.lr
        return self.cfg.lr * max(0.0, (total - iteration) / (total - start))

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.cfg.batch_size
        x = self.augment.batch(self.simulations, n, self.rng)
        y = self.augment.batch(self.experimental, n, self.rng)
        return self._tensor(x), self._tensor(y)

    def _tensor(self, a: np.ndarray) -> torch.Tensor:
        """[0, 1] numpy batch → [-1, 1] tensor on the training device."""
        return (torch.from_numpy(np.ascontiguousarray(a)) * 2 - 1).to(self.device)

    # one iteration ----------------------------------------------------------------------------
    def step(self) -> dict[str, float]:
        """One training iteration; returns the loss terms (weighted) and ``seconds``."""
        t0 = time.perf_counter()
        m, cfg, opt = self.model, self.cfg, self.optimizers
        m.train()
        for group in (g for o in opt.values() for g in o.param_groups):
            group["lr"] = self.lr_at(self.iteration)
        dis_modules = [mod for name, mod in m.named_children() if name.startswith("dis_")]

        for _ in range(cfg.content_dis_steps):
            x, y = self._batch()
            with torch.no_grad():
                c_a, c_b = m.content.encode(x, "a"), m.content.encode(y, "b")
            opt["content"].zero_grad(set_to_none=True)
            content_discriminator_loss(m, c_a, c_b).backward()
            torch.nn.utils.clip_grad_norm_(m.dis_content.parameters(), 5.0)
            opt["content"].step()

        x, y = self._batch()
        r = forward(m, x, y)
        # discriminators first (on detached fakes), then encoders/generators against them
        opt["dis"].zero_grad(set_to_none=True)
        loss_dis = discriminator_losses(m, r)
        loss_dis.backward()
        opt["dis"].step()
        opt["content"].zero_grad(set_to_none=True)
        loss_dc = content_discriminator_loss(m, r.codes["c_a"], r.codes["c_b"])
        loss_dc.backward()
        torch.nn.utils.clip_grad_norm_(m.dis_content.parameters(), 5.0)
        opt["content"].step()

        _requires_grad(dis_modules, False)
        try:
            generator_step_losses(m, x, y, cfg, result=r)
            opt["gen"].zero_grad(set_to_none=True)
            # latent regression + random-attribute adversarial: content encoders and
            # generators only (routed explicitly so that the gradient really lands there)
            alone = torch.autograd.grad(
                r.alone_total(), self._alone_params, retain_graph=True, allow_unused=True
            )
            r.joint_total().backward()
            for p, g in zip(self._alone_params, alone, strict=True):
                if g is not None:
                    p.grad = g if p.grad is None else p.grad + g
            opt["gen"].step()
        finally:
            _requires_grad(dis_modules, True)

        self.iteration += 1
        seconds = time.perf_counter() - t0
        self.seconds += seconds
        scalars = r.scalars()
        scalars.update(
            dis=float(loss_dis.detach()), content_dis=float(loss_dc.detach()), seconds=seconds
        )
        for k, v in scalars.items():
            self._running[k] = self._running.get(k, 0.0) + v
        self._running_n += 1
        return scalars

    def flush_history(self) -> dict[str, float] | None:
        """Append the mean of the losses since the last flush to :attr:`history`."""
        if not self._running_n:
            return None
        entry = {k: v / self._running_n for k, v in self._running.items()}
        entry["iteration"] = self.iteration
        entry["lr"] = self.lr_at(max(0, self.iteration - 1))
        self.history.append(entry)
        self._running, self._running_n = {}, 0
        return entry

    # attributes and previews ------------------------------------------------------------------
    def reference_attribute(self, n_patches: int = 16) -> np.ndarray:
        """Mean attribute code (posterior means) of augmented experimental patches.

        Uses its own seeded stream, so it does not disturb the training stream.
        """
        rng = np.random.default_rng(self.seed + 7919)
        y = self._tensor(self.augment.batch(self.experimental, n_patches, rng))
        self.model.eval()
        try:
            with torch.no_grad():
                mu, _ = self.model.attr_b(y)
        finally:
            self.model.train()
        return mu.mean(0).cpu().numpy()

    def preview(self, n: int = 4) -> np.ndarray:
        """Preview grid in [0, 1]: rows = simulation crops, translations with the reference
        attribute, translations with a fixed random attribute, experimental crops."""
        p = self.cfg.image_px

        def crops(images: list[np.ndarray]) -> np.ndarray:
            out = []
            for i in range(n):
                a = images[i % len(images)]
                h, w = a.shape
                top, left = max(0, (h - p) // 2), max(0, (w - p) // 2)
                c = a[top : top + p, left : left + p]
                out.append(np.pad(c, ((0, p - c.shape[0]), (0, p - c.shape[1])), mode="reflect"))
            return np.stack(out)[:, None]

        x = self._tensor(crops(self.simulations))
        z_ref = torch.from_numpy(self.reference_attribute()).to(self.device).expand(n, -1)
        z_rand = (
            torch.from_numpy(
                np.random.default_rng(self.seed + 1).standard_normal((n, self.cfg.attr_dim))
            )
            .float()
            .to(self.device)
        )
        self.model.eval()
        try:
            with torch.no_grad():
                t_ref = self.model.translate(x, z_ref)
                t_rand = self.model.translate(x, z_rand)
        finally:
            self.model.train()
        rows = [x, t_ref, t_rand, self._tensor(crops(self.experimental))]
        grid = torch.cat([torch.cat(list(r[:, 0]), dim=1) for r in rows], dim=0)
        return ((grid.cpu().numpy() + 1) / 2).clip(0, 1)

    # checkpoints ------------------------------------------------------------------------------
    def save_checkpoint(self, folder: str | os.PathLike) -> Path:
        """Write ``checkpoint.safetensors`` (+ a JSON copy of its scalars) in ``folder``."""
        from safetensors.torch import save_file

        folder = Path(folder)
        tensors = {
            f"model.{k}": v.detach().cpu().clone().contiguous()
            for k, v in self.model.state_dict().items()
        }
        groups = {}
        for name, opt in self.optimizers.items():
            sd = opt.state_dict()
            groups[name] = sd["param_groups"]
            for idx, state in sd["state"].items():
                for key, val in state.items():
                    val = val if torch.is_tensor(val) else torch.tensor(val)
                    tensors[f"optim.{name}.{idx}.{key}"] = val.detach().cpu().clone().contiguous()
        tensors["rng.torch"] = torch.get_rng_state().clone()
        if self.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device).clone()
        meta = {
            "format": CHECKPOINT_FORMAT,
            "stackview_version": __version__,
            "iteration": self.iteration,
            "seconds": self.seconds,
            "seed": self.seed,
            "config": self.cfg.to_dict(),
            "numpy_rng": self.rng.bit_generator.state,
            "param_groups": groups,
            "history": self.history,
            "running": {"sum": self._running, "n": self._running_n},
        }
        text = json.dumps(meta, indent=1)
        target = folder / CHECKPOINT_NAME
        with atomic_path(target) as tmp:
            save_file(tensors, str(tmp), metadata={"checkpoint": text})
        write_text_atomic(folder / "checkpoint.json", text)
        log.info("checkpoint at iteration %d written to %s", self.iteration, target)
        return target

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Restore weights, optimisers, random streams and history from a checkpoint file
        (or a folder holding ``checkpoint.safetensors``)."""
        path = Path(path)
        if path.is_dir():
            path = path / CHECKPOINT_NAME
        if not path.is_file():
            raise UsageError(f"no checkpoint to resume from at {path}")
        meta, tensors = _read_safetensors(path, "checkpoint")
        if meta.get("format") != CHECKPOINT_FORMAT:
            raise UsageError(f"{path.name} is not a stackview style checkpoint")
        saved_cfg = StyleConfig.from_dict(meta["config"])
        if saved_cfg.replace(iterations=self.cfg.iterations) != self.cfg:
            raise UsageError(
                "the checkpoint was made with another style configuration "
                f"('{saved_cfg.name}'); resume with the same options"
            )
        model_state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        self.model.load_state_dict(model_state, strict=True)
        for name, opt in self.optimizers.items():
            state: dict[int, dict] = {}
            prefix = f"optim.{name}."
            for key, val in tensors.items():
                if key.startswith(prefix):
                    idx, field = key[len(prefix) :].split(".", 1)
                    state.setdefault(int(idx), {})[field] = val
            opt.load_state_dict({"state": state, "param_groups": meta["param_groups"][name]})
        torch.set_rng_state(tensors["rng.torch"])
        if "rng.cuda" in tensors and self.device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"], self.device)
        self.rng.bit_generator.state = meta["numpy_rng"]
        self.iteration = int(meta["iteration"])
        self.seconds = float(meta["seconds"])
        self.seed = int(meta["seed"])
        self.history = list(meta["history"])
        self._running = dict(meta["running"]["sum"])
        self._running_n = int(meta["running"]["n"])
        log.info("resumed from %s at iteration %d", path, self.iteration)


    def init_weights(self, source: str | os.PathLike) -> str:
        """Start from trained weights (fine-tuning, e.g. with a stronger content-consistency
        weight): a checkpoint (file or folder; discriminators included) or a style bundle (its
        generators and encoders; the discriminators start afresh). The optimisers, schedule and
        iteration count start afresh. Returns what was loaded, for the card."""
        path = Path(source)
        ckpt = path / CHECKPOINT_NAME if path.is_dir() else path
        if ckpt.is_file() and ckpt.name == CHECKPOINT_NAME:
            meta, tensors = _read_safetensors(ckpt, "checkpoint")
            if meta.get("format") != CHECKPOINT_FORMAT:
                raise UsageError(f"{ckpt.name} is not a stackview style checkpoint")
            other = StyleConfig.from_dict(meta["config"])
            state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
            kind = f"checkpoint at iteration {int(meta['iteration'])}"
        else:
            from stackview.style.bundle import load_bundle

            model, _ = load_bundle(path)  # checks the header and the weights' SHA-256
            other, state, kind = model.cfg, model.state_dict(), "bundle"
        differ = [k for k in ARCHITECTURE_FIELDS if getattr(other, k) != getattr(self.cfg, k)]
        if differ:
            raise UsageError(
                f"{path.name} has another network ({', '.join(differ)} differ); start from a "
                "model of the same configuration"
            )
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        if unexpected or any(not k.startswith("dis") for k in missing):
            raise UsageError(f"{path.name} does not fit this network")
        log.info("initialised from the %s %s", kind, path)
        return f"{path} ({kind})"


# What the weights' shapes depend on; the loss weights, schedule and data may change.
ARCHITECTURE_FIELDS = (
    "width", "content_res_blocks", "gen_res_blocks", "attr_dim", "attr_width", "attr_blocks",
    "dis_width", "dis_layers", "dis_scales", "spectral_norm", "random_discriminators",
)


def _read_safetensors(path: Path, key: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """Read a safetensors file and the JSON stored under metadata ``key``; never unpickles."""
    from safetensors.torch import load_file

    from stackview.style.bundle import check_safetensors_header

    metadata = check_safetensors_header(path)
    if key not in metadata:
        raise UsageError(f"{path.name} has no '{key}' record; it was not written by stackview")
    return json.loads(metadata[key]), load_file(str(path))


def train_style(
    cfg: StyleConfig,
    simulations: Sequence[np.ndarray],
    experimental: Sequence[np.ndarray],
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    resume: bool = False,
    checkpoint_every: int = 500,
    preview_every: int = 250,
    log_every: int = 50,
    card: dict | None = None,
    device: str | None = None,
    init_from: str | os.PathLike | None = None,
    progress: ProgressCallback = null_progress,
    cancel: CancelToken | None = None,
) -> Path:
    """Train a style model and write its bundle; the job function behind ``style train``.

    Parameters
    ----------
    cfg
        Configuration (``cfg.sampling_A`` should be set: the images' common sampling, Å/px).
    simulations, experimental
        [0, 1] images at ``cfg.sampling_A``.
    out_dir
        Receives ``checkpoint.safetensors`` (+ ``.json``), ``previews/iter_*.png``,
        ``history.json`` and the bundle ``style.safetensors`` + ``style.json``.
    resume
        Continue from ``out_dir``'s checkpoint (error if there is none).
    checkpoint_every, preview_every, log_every
        Iteration periods (0 disables previews).
    card
        Extra fields for the bundle card (material, microscope, command, data, …).
    device
        Training device (default: CUDA when available, else CPU).
    init_from
        Start a new run from a checkpoint or bundle of the same network
        (:meth:`StyleTrainer.init_weights`); ignored when resuming.
    progress, cancel
        Job API. On cancel a checkpoint is written before :class:`Cancelled` propagates.

    Returns
    -------
    Path of the bundle's weight file.
    """
    from stackview.style.bundle import save_bundle
    from stackview.style.images import save_png

    cancel = cancel or CancelToken()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    trainer = StyleTrainer(cfg, simulations, experimental, seed=seed, device=device)
    if resume:
        trainer.load_checkpoint(out_dir)
    elif (out_dir / CHECKPOINT_NAME).exists():
        raise UsageError(f"{out_dir} already holds a checkpoint: pass --resume or use a new folder")
    initialised = trainer.init_weights(init_from) if init_from and not resume else None
    total = cfg.iterations
    progress(trainer.iteration, total, "starting")
    try:
        while trainer.iteration < total:
            cancel.check()
            scalars = trainer.step()
            it = trainer.iteration
            loss = sum(v for k, v in scalars.items() if k not in ("seconds", "dis", "content_dis"))
            progress(it, total, f"loss {loss:.3f} {scalars['seconds']:.2f}s/it")
            if it % log_every == 0 or it == total:
                entry = trainer.flush_history()
                if entry:
                    log.info(
                        "iteration %d: %s", it, ", ".join(f"{k} {v:.4g}" for k, v in entry.items())
                    )
                write_text_atomic(out_dir / "history.json", json.dumps(trainer.history, indent=1))
            if preview_every and (it % preview_every == 0 or it == total):
                save_png(out_dir / "previews" / f"iter_{it:06d}.png", trainer.preview())
            if it % checkpoint_every == 0 and it < total:
                trainer.save_checkpoint(out_dir)
    except (Cancelled, KeyboardInterrupt):
        # a cancelled or interrupted (Ctrl-C) run can always be resumed
        trainer.flush_history()
        trainer.save_checkpoint(out_dir)
        raise
    trainer.flush_history()
    trainer.save_checkpoint(out_dir)
    write_text_atomic(out_dir / "history.json", json.dumps(trainer.history, indent=1))
    info = dict(card or {})
    training = dict(info.pop("training", {}))
    training.update(
        iterations=trainer.iteration,
        seconds=round(trainer.seconds, 1),
        seconds_per_iteration=round(trainer.seconds / max(1, trainer.iteration), 4),
        seed=trainer.seed,
        device=str(trainer.device),
        n_simulations=len(simulations),
        n_experimental=len(experimental),
        final_losses={
            k: round(v, 5)
            for k, v in (trainer.history[-1] if trainer.history else {}).items()
            if k != "iteration"
        },
    )
    if initialised:
        training["init_from"] = initialised
    info["training"] = training
    return save_bundle(out_dir / "style", trainer.model, trainer.reference_attribute(), info)


def seconds_per_iteration(cfg: StyleConfig, n: int = 5, warmup: int = 1, seed: int = 0) -> float:
    """Measured wall-clock seconds of one training iteration of ``cfg`` on random lattices."""
    rng = np.random.default_rng(seed)
    side = int(math.ceil(AffineAugment(cfg.image_px).footprint_px())) + 8
    sims = [rng.random((side, side), dtype=np.float32) for _ in range(2)]
    trainer = StyleTrainer(cfg, sims, sims, seed=seed)
    for _ in range(warmup):
        trainer.step()
    t0 = time.perf_counter()
    for _ in range(n):
        trainer.step()
    return (time.perf_counter() - t0) / n
