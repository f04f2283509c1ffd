"""The training wizard's project: a folder on disk whose ``project.json`` holds every choice
and every finished step, written atomically after each change (no Qt here).

Closing the wizard and opening the same folder again resumes at the first unfinished step.
Heavy outputs live in sub-folders: ``candidates/`` (noise-free simulations for the selection),
``selection/``, ``style/`` (DRIT checkpoints, previews, bundle), ``data/`` (train and test
datasets), ``model/`` (regressor checkpoints and bundle), ``evaluation/``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from stackview.errors import UsageError
from stackview.io.atomic import write_text_atomic

PROJECT_FILE = "project.json"
FORMAT = "stackview-wizard-1"

#: the steps in wizard order; ``done`` lists those finished
STEPS = ("material", "imaging", "images", "selection", "style", "dataset", "regressor",
         "evaluation", "finish")

DEFAULTS: dict = {
    "format": FORMAT,
    "done": [],
    "material": {"name": "", "structure": "", "layers": 2, "task": "slip"},
    "imaging": {"preset": "ReS2-300kV", "energy_kV": 300.0, "convergence_mrad": 21.3,
                "adf_inner_mrad": 39.0, "adf_outer_mrad": 200.0, "defocus_A": [35.0, 45.0],
                "source_size_A": [0.6, 0.7], "sampling_A": 0.16},
    "images": [],  # [{"path": ..., "sampling_nm": ...}]
    "selection": {"candidates": 24, "candidate_px": 128, "keep": 0, "chosen": [],
                  "feature_kind": "", "command": ""},
    "style": {"skip": False, "config": "cpu", "iterations": 0, "image_px": 0,
              "bundle": "", "command": ""},
    "dataset": {"mode": "random", "count": 2000, "step_A": 0.1, "patch_px": 128,
                "test_count": 200, "vacancies": 0.0, "holes": 0.0, "contamination": 0.0,
                "psnr": [], "train": "", "test": "", "seconds": 0.0, "command": ""},
    "regressor": {"backbone": "resnet18", "steps": 3000, "batch_size": 32, "lr": 1e-3,
                  "init_from": "", "bundle": "", "history": [], "device": "", "command": ""},
    "evaluation": {"metrics": {}, "report": "", "command": ""},
    "finish": {"name": "", "installed": ""},
}


class Project:
    """The wizard state of one project folder; :meth:`save` after every change."""

    def __init__(self, folder: str | Path, data: dict | None = None) -> None:
        self.folder = Path(folder)
        self.data = copy.deepcopy(DEFAULTS)
        for key, value in (data or {}).items():
            if isinstance(value, dict) and isinstance(self.data.get(key), dict):
                self.data[key].update(value)
            else:
                self.data[key] = value

    # --- persistence ---------------------------------------------------------------------
    @property
    def file(self) -> Path:
        return self.folder / PROJECT_FILE

    @classmethod
    def open(cls, folder: str | Path) -> Project:
        """Open ``folder``'s project, or start a new one there (the folder is created)."""
        folder = Path(folder)
        file = folder / PROJECT_FILE
        if not file.exists():
            if folder.exists() and not folder.is_dir():
                raise UsageError(f"{folder} is a file; choose a folder for the project")
            folder.mkdir(parents=True, exist_ok=True)
            project = cls(folder)
            project.save()
            return project
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UsageError(f"{file} is not a readable wizard project ({exc})") from exc
        if data.get("format") != FORMAT:
            raise UsageError(f"{file} is not a stackview wizard project")
        return cls(folder, data)

    def save(self) -> None:
        write_text_atomic(self.file, json.dumps(self.data, indent=1) + "\n")

    # --- steps ---------------------------------------------------------------------------
    def __getitem__(self, key: str):
        return self.data[key]

    def update(self, step: str, **values) -> None:
        """Change the settings of ``step`` and save."""
        self.data[step].update(values)
        self.save()

    def is_done(self, step: str) -> bool:
        return step in self.data["done"]

    def mark_done(self, step: str, done: bool = True) -> None:
        """Record ``step`` as finished (or not) and save; un-finishing a step also un-finishes
        the steps after it, whose results depended on it."""
        done_list = [s for s in self.data["done"] if s in STEPS]
        if done:
            if step not in done_list:
                done_list.append(step)
        else:
            later = STEPS[STEPS.index(step):]
            done_list = [s for s in done_list if s not in later]
        self.data["done"] = done_list
        self.save()

    def resume_step(self) -> str:
        """The first step not finished yet (the page to reopen at)."""
        for step in STEPS:
            if step not in self.data["done"]:
                return step
        return STEPS[-1]

    def path(self, *parts: str) -> Path:
        return self.folder.joinpath(*parts)
