"""A trained model as the teacher of a fine-tune (``stackview train --teacher``; torch, no Qt).

Context fine-tunes (issue 19) teach a model that reads its window with image around it to give
the reading it gave of the isolated window. Learning that from the labels alone re-learns the
whole mapping from a few thousand fields and lost the twist model's accuracy; the bare model's
own reading of the isolated window is a target that holds what it already knew, so the student
is pulled to the teacher's raw outputs (same head, same material) while it learns to ignore
what lies around the window.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import torch

from stackview.errors import UsageError
from stackview.inference.regressor import RegressorSpec, StackingRegressor

log = logging.getLogger(__name__)


@dataclass
class Teacher:
    """A loaded teacher: its network (eval mode) and the side of the central crop it reads."""

    model: StackingRegressor
    side_px: int
    name: str

    def crop(self, images: np.ndarray) -> np.ndarray:
        """The central ``side_px`` square of each field: the window (and the teacher's own
        margin, when it reads context) as the teacher reads it in window mode."""
        h, w = images.shape[-2:]
        y0, x0 = (h - self.side_px) // 2, (w - self.side_px) // 2
        return images[..., y0:y0 + self.side_px, x0:x0 + self.side_px]

    @torch.no_grad()
    def raw(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x, raw=True).float()


def load_teacher(source: str | os.PathLike, spec: RegressorSpec, sampling_A: float | None = None
                 ) -> Teacher:
    """The bundle ``source`` (name or path) as the teacher of a ``spec`` model: one clear error
    when its outputs or its window are not the student's."""
    from stackview.models.bundle import load_bundle

    bundle = load_bundle(source)
    other, card = bundle.model.spec, bundle.card
    for key in ("task", "material", "layers", "family", "head"):
        if getattr(other, key) != getattr(spec, key):
            raise UsageError(f"the teacher {card.name} is a {other.material} {other.task} model "
                             f"with a {other.head} head; its {key} differs from the model "
                             "being trained")
    if other.n_raw != spec.n_raw:
        raise UsageError(f"the teacher {card.name} has {other.n_raw} outputs, the model being "
                         f"trained {spec.n_raw}")
    window = spec.window_px or None
    if window is not None and card.patch_px != window:
        # e.g. a 100-px bare model teaching a 96-px context model (the trunk's stride is 32):
        # the training fields carry one label each, so the teacher's reading of its own window
        # on the same centre is the target; only a teacher of very different reach is refused
        if not 0.75 <= card.patch_px / window <= 1.34:
            raise UsageError(f"the teacher {card.name} reads {card.patch_px} px windows, the "
                             f"model being trained {window} px")
        log.info("the teacher %s reads %d px windows, the model being trained %d px",
                 card.name, card.patch_px, window)
    if sampling_A is not None and abs(card.sampling_A - sampling_A) > 1e-6:
        raise UsageError(f"the teacher {card.name} was trained at {card.sampling_A:g} Å/px, "
                         f"the training data are at {sampling_A:g} Å/px")
    side = card.patch_px + 2 * other.context_px
    return Teacher(model=bundle.model.eval(), side_px=side, name=card.name)
