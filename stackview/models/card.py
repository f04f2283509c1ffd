"""Model cards: what a trained stacking regressor is, and the files of a bundle (no torch, no Qt).

A bundle is two files with one stem (the same layout as the style bundles of
:mod:`stackview.style.bundle`): ``NAME.safetensors`` holds the regressor's weights and
``NAME.json`` the :class:`ModelCard` — material, task, layers, backbone and output normalisation,
input sampling (Å/px), patch size (px and nm), the label convention (lattice vectors, label names,
canonical domain, symmetry), the style of the training images, the training command and data
summary, measured accuracy, the stackview version and the SHA-256 of the weights. This module
reads cards and checks weight files without parsing them (:func:`check_safetensors` refuses a
pickle); :mod:`stackview.models.bundle` saves and loads whole bundles.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

from stackview import __version__
from stackview.errors import UsageError

BUNDLE_FORMAT = "stackview-model-bundle/1"
_MAX_HEADER_BYTES = 100 * 1024 * 1024
_PICKLE_HINT = (
    "stackview never unpickles model files, because unpickling can run arbitrary code; "
    "load only stackview bundles (NAME.json + NAME.safetensors)"
)



# --- the card ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelCard:
    """Everything needed to use, trust and reproduce a regressor bundle.

    Parameters
    ----------
    name
        Bundle name (the file stem).
    spec
        :class:`stackview.inference.regressor.RegressorSpec` as a dict (backbone, task,
        material, layers, label normalisation, head width).
    sampling_A
        Input sampling (Å per pixel) the model expects.
    patch_px
        Side of the training patches (pixels); ``patch_nm = patch_px · sampling_A / 10``.
    orientation
        ``"aligned"`` (lattice vector a along +x in the training images) or ``"random"``.
    style
        How the training images were styled (``clean``, ``physics``, ``drit:<bundle>``).
    training
        Training command, configuration, data summary, timing and device.
    accuracy
        Measured accuracy (see :mod:`stackview.inference.evaluate`), keyed by test set.
    description
        Free text.
    """

    name: str
    spec: dict
    sampling_A: float
    patch_px: int
    orientation: str = "aligned"
    style: str = "clean"
    training: dict = field(default_factory=dict)
    accuracy: dict = field(default_factory=dict)
    description: str = ""
    weights_dtype: str = "float32"
    stackview_version: str = __version__
    created: str = ""

    def __post_init__(self) -> None:
        if not (0.005 <= float(self.sampling_A) <= 5.0):
            raise UsageError(f"sampling {self.sampling_A} Å/px is out of range (0.005 to 5)")
        if not (8 <= int(self.patch_px) <= 4096):
            raise UsageError(f"patch size {self.patch_px} px is out of range (8 to 4096)")
        if self.orientation not in ("aligned", "random"):
            raise UsageError("orientation must be 'aligned' or 'random'")
        self.regressor_spec()  # validates the spec

    # derived --------------------------------------------------------------------------------
    def regressor_spec(self):
        from stackview.inference.regressor import RegressorSpec

        return RegressorSpec.from_dict(self.spec)

    @property
    def task(self) -> str:
        return self.spec["task"]

    @property
    def material(self) -> str:
        return self.spec["material"]

    @property
    def layers(self) -> int:
        return int(self.spec["layers"])

    @property
    def backbone(self) -> str:
        return self.spec["backbone"]

    @property
    def patch_nm(self) -> float:
        return self.patch_px * self.sampling_A / 10.0

    @property
    def context_px(self) -> int:
        """Pixels of image the model reads around each window on every side (0: isolated
        windows; see :class:`stackview.inference.regressor.RegressorSpec`)."""
        return int(self.spec.get("context_px", 0))

    @property
    def input_px(self) -> int:
        """Side of the model's input: the window and its context."""
        return self.patch_px + 2 * self.context_px

    def label_convention(self) -> dict:
        """Label names, unit, domain and symmetry, and the lattice vectors they refer to."""
        space = self.regressor_spec().label_space()
        mat = space.material
        lattice = {
            "a_vec_A": [round(float(v), 6) for v in mat.a_vec_A],
            "b_vec_A": [round(float(v), 6) for v in mat.b_vec_A],
            "a_A": round(mat.a_A, 6), "b_A": round(mat.b_A, 6),
            "gamma_deg": round(mat.gamma_deg, 4),
        }
        if self.task == "twist":
            return {
                "names": ["theta_deg"], "unit": "deg", "domain_deg": list(space.domain_deg),
                "symmetry": (f"theta = theta + {space.period_deg:g} deg"
                             + ("; theta = -theta (mirror)" if space.mirror else "")),
                "lattice": lattice,
            }
        names = [n if n == "family" else f"{n}_A" for n in space.names]
        sym = "D = D + m*a + n*b"
        if space.uses_group:
            sym += ("; D = g.D for the monolayer's projected point operations g"
                    + ("; D = -g.D in the parallel family (layer swap)"
                       if "parallel" in space.families else ""))
        elif space.layer_swap:
            sym += ("; D = -D (layer swap)" if space.layers == 2
                    else "; (D1, D2) = (-D2, -D1) (stack reversal)")
        out = {
            "names": names, "unit": "A", "domain_A": [list(b) for b in space.domain_bounds_A()],
            "symmetry": sym, "slip": "D = Da*a_hat + Db*b_hat (A along the unit lattice vectors)",
            "lattice": lattice,
        }
        if space.family != "parallel" or space.uses_group:
            from stackview.core.stacking import chamber_frac, stacking_classes

            out["family"] = space.family
            out["families"] = {
                "parallel": "same-orientation layers (3R family), top = bottom + D",
                "antiparallel": "one layer turned by 180 deg about its metal atom (2H family); "
                                "D = metal of the turned layer - metal of the other",
                "family_column": "probability of the antiparallel family (0..1)",
            } if space.family == "both" else {}
            out["chambers_frac"] = {f: chamber_frac(mat, f).tolist() for f in space.families
                                    if chamber_frac(mat, f) is not None}
            out["classes"] = [{"name": c.name, "family": c.family, "frac": list(c.frac),
                               "description": c.description} for c in stacking_classes(mat)
                              if c.family in space.families]
            out["class_convention"] = ("He, Hummer & Franchini, Phys. Rev. B 89, 075409 (2014); "
                                       "AB and BA are one projection")
        return out

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data = {
            "format": BUNDLE_FORMAT, "kind": "regressor", **data,
            "task": self.task, "material": self.material, "layers": self.layers,
            "backbone": self.backbone, "patch_nm": round(self.patch_nm, 6),
            "label_convention": self.label_convention(),
        }
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ModelCard:
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in names})
        except TypeError as exc:
            raise UsageError(f"the model card is incomplete ({exc})") from None


# --- files ---------------------------------------------------------------------------------------
def bundle_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """(weights, card) of a bundle given its stem, its ``.json`` or its ``.safetensors``."""
    path = Path(path)
    if path.is_dir():
        cards = sorted(p for p in path.glob("*.json") if p.with_suffix(".safetensors").is_file())
        if len(cards) != 1:
            raise UsageError(f"{path} must hold exactly one model bundle (NAME.json + "
                             f"NAME.safetensors); found {len(cards)}")
        path = cards[0]
    stem = path.with_suffix("") if path.suffix in (".json", ".safetensors") else path
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


def _looks_like_pickle(head: bytes) -> bool:
    # pickle protocol 2+ starts with PROTO (0x80); torch.save writes a zip (PK\x03\x04);
    # (protocol 0/1 pickles start with '(' for most containers)
    return head[:1] in (b"\x80", b"(") or head[:4] == b"PK\x03\x04"


def check_safetensors(path: str | os.PathLike) -> dict[str, str]:
    """Check from its header that ``path`` is a safetensors file; return its string metadata.

    Raises
    ------
    UsageError
        For a pickle / PyTorch file (saying why it is refused) or any other non-safetensors file.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) == 8:
                (n,) = struct.unpack("<Q", head)
            else:
                n = 0
            if not (2 <= n <= min(_MAX_HEADER_BYTES, size - 8)):
                if _looks_like_pickle(head):
                    raise UsageError(f"'{path.name}' is a pickle or PyTorch file: {_PICKLE_HINT}")
                raise UsageError(f"'{path.name}' is not a safetensors weight file")
            header = json.loads(fh.read(n).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise UsageError(f"'{path.name}' is not a safetensors weight file") from None
    if not isinstance(header, dict):
        raise UsageError(f"'{path.name}' is not a safetensors weight file")
    meta = header.get("__metadata__", {}) or {}
    return {str(k): str(v) for k, v in meta.items()}


def file_sha256(path: Path) -> str:
    """SHA-256 hex digest of a file (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_card(path: str | os.PathLike) -> ModelCard:
    """The :class:`ModelCard` of a bundle (no weights are read)."""
    path = Path(path)
    if path.is_file() and path.suffix not in (".json", ".safetensors"):
        # a file of another kind (e.g. model.pt) given directly
        check_safetensors(path)
        raise UsageError(f"'{path.name}' is not a model bundle (NAME.json + NAME.safetensors)")
    weights, card_path = bundle_paths(path)
    if not card_path.is_file():
        if weights.is_file():
            check_safetensors(weights)
        raise UsageError(f"model bundle card not found: {card_path}")
    raw = card_path.read_bytes()
    if _looks_like_pickle(raw[:8]):
        raise UsageError(f"'{card_path.name}' is a pickle or PyTorch file: {_PICKLE_HINT}")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise UsageError(f"'{card_path.name}' is not a model bundle card") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"'{card_path.name}' is not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict) or data.get("format") != BUNDLE_FORMAT:
        kind = data.get("kind") if isinstance(data, dict) else None
        if kind == "style":
            raise UsageError(f"'{card_path.name}' is a style bundle, not a stacking model")
        raise UsageError(f"'{card_path.name}' is not a stackview model bundle card")
    return ModelCard.from_dict(data)
