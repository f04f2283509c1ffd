"""Which torch device runs a job: the CLI's ``--device auto|cpu|cuda`` (no Qt)."""

from __future__ import annotations

import torch

from stackview.errors import UsageError


def resolve_device(device: str | None = None) -> torch.device:
    """``None``/``"auto"`` → CUDA when available, else CPU; otherwise the named device."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UsageError(f"unknown device '{device}'; use auto, cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("CUDA was requested but no CUDA GPU is available; use --device cpu")
    return dev


def module_device(module: torch.nn.Module) -> torch.device:
    """The device of a module's parameters (CPU for a module without any)."""
    return next(module.parameters(), torch.empty(0)).device
