"""What a labelled dataset contains: :class:`DatasetSpec` (plain Python + numpy; no Qt, no torch).

A spec fixes everything that decides the patches — task and label sampling, material, imaging
(optics preset, defocus and source-size choices, sampling in Å/px, patch size), structural noise
(jitter, vacancies, holes), style (``clean``, ``physics``, ``drit``) and image augmentations — and
the seed. The same spec gives the same dataset, bit for bit; the spec is stored in the dataset's
provenance.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from stackview.errors import UsageError
from stackview.simulation.optics import DEFAULT_OPTICS, FALLBACK_OPTICS

TASKS = ("slip", "twist")
MODES = ("random", "grid")
STYLES = ("clean", "physics", "drit")
ORIENTATIONS = ("aligned", "random")
MAX_SAMPLES = 5_000_000


def _pair(value, name: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise UsageError(f"{name} must be a pair of numbers (low, high)") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise UsageError(f"{name} must be finite with low <= high")
    return lo, hi


@dataclass(frozen=True)
class DatasetSpec:
    """Everything that fixes a labelled dataset (see module docstring).

    Parameters
    ----------
    task
        ``"slip"`` or ``"twist"``.
    material
        Material name.
    layers
        2 or 3 for slip (bilayer, trilayer); 2 for twist.
    family
        Slip bilayers of materials with two stacking families (MoS2, MoSe2, WS2;
        :mod:`stackview.core.stacking`): ``"parallel"``, ``"antiparallel"`` or ``"both"`` (half
        of each, a third label column ``family`` = 0 or 1). For these materials every patch is
        also turned by 180° at random: a lattice frame found in an image does not say which way
        the layers point.
    mode
        ``"random"``: labels uniform over the canonical domain; ``"grid"``: a regular grid
        (slip: step ``step_A`` in Å along each label axis; twist: θ step ``theta_step_deg``).
    count
        Random mode: number of patches. Grid mode: patches per grid point (slip) — each with
        its own random lattice origin and noise.
    step_A
        Grid step of slip labels (Å); the paper's training grid is 0.1 Å, its test grid 0.05 Å.
    theta_range_deg, theta_step_deg
        Twist angles (degrees) drawn from / gridded over this range.
    positions
        Twist: patches per angle, at uniformly random positions across one moiré period (the
        local registry of the two layers at the patch centre is uniform over a unit cell).
    sampling_A, patch_px
        Pixel size (Å) and side (pixels) of the patches; ``patch_nm = patch_px·sampling_A/10``.
    optics
        Optics preset name (``stackview.simulation.PRESETS``) or custom conditions as
        ``kv=200,convergence=25,adf=45-180`` (:func:`stackview.simulation.resolve_optics`);
        empty: the material's default.
    defocus_A, source_size_A
        Values drawn per patch (the paper: defocus 35–45 Å, source size 0.6–0.7 Å).
    jitter_z_A, jitter_xy_A
        Uniform random atom displacements (the paper: ±0.5 Å in z, ±0.1 Å in x, y).
    orientation
        ``"aligned"``: lattice vector a along +x (image columns); ``"random"``: the whole stack
        rotated by a random angle (labels are unchanged: slip is in lattice coordinates, twist is
        relative). Random orientation is refused for slip of a material whose projected
        monolayer has more than 2-fold symmetry (the rotated slip would have several labels).
    vacancy_range
        Fraction of atoms deleted per patch, uniform in this range (paper: up to 10 %).
    hole_probability, hole_max_fraction
        Probability of a hole (a disk with no atoms of one random layer) and its largest area
        as a fraction of the patch (paper: up to 25 %).
    mask_probability, mask_max_fraction
        Occluding blobs on the image.
    contamination_probability, contamination_max
        Surface-contamination texture added with strength up to ``contamination_max``.
    psnr_range_dB, noise_probability
        Gaussian noise with PSNR uniform in this range (None: none), on this fraction of patches.
    style
        ``"clean"`` (noise-free simulation), ``"physics"`` (microscope noise model of
        :mod:`stackview.style.physics_noise`) or ``"drit"`` (a DRIT style bundle).
    style_bundle
        Style bundle path for ``style="drit"``.
    style_diverse
        DRIT: a random attribute (style) code per patch instead of the bundle's reference code.
    physics
        Overrides of the per-patch parameter ranges of the physics noise model
        (:data:`stackview.datasets.generate.PHYSICS_RANGES`): a number or a [low, high] range.
    seed
        Seed of every random choice.
    chunk
        Patches per storage chunk and per parallel task.
    """

    task: str = "slip"
    material: str = "ReS2"
    layers: int = 2
    family: str = "parallel"
    mode: str = "random"
    count: int = 1000
    step_A: float = 0.1
    theta_range_deg: tuple[float, float] = (0.0, 60.0)
    theta_step_deg: float = 0.5
    positions: int = 16
    sampling_A: float = 0.16
    patch_px: int = 128
    optics: str = ""
    defocus_A: tuple[float, ...] = (35.0, 40.0, 45.0)
    source_size_A: tuple[float, ...] = (0.6, 0.65, 0.7)
    jitter_z_A: float = 0.5
    jitter_xy_A: float = 0.1
    orientation: str = ""
    vacancy_range: tuple[float, float] = (0.0, 0.0)
    hole_probability: float = 0.0
    hole_max_fraction: float = 0.25
    mask_probability: float = 0.0
    mask_max_fraction: float = 0.2
    contamination_probability: float = 0.0
    contamination_max: float = 0.5
    psnr_range_dB: tuple[float, float] | None = None
    noise_probability: float = 1.0
    style: str = "clean"
    style_bundle: str = ""
    style_diverse: bool = False
    physics: dict = field(default_factory=dict)
    seed: int = 0
    chunk: int = 32

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        if self.task not in TASKS:
            raise UsageError(f"the task must be 'slip' or 'twist', not {self.task!r}")
        if self.mode not in MODES:
            raise UsageError(f"the label mode must be 'random' or 'grid', not {self.mode!r}")
        if self.style not in STYLES:
            raise UsageError(f"the style must be one of {', '.join(STYLES)}, not {self.style!r}")
        if self.style == "drit" and not self.style_bundle:
            raise UsageError("the 'drit' style needs a style bundle (--style-bundle)")
        if self.task == "twist" and self.layers != 2:
            raise UsageError("twist datasets are bilayers (layers = 2)")
        if self.layers not in (2, 3):
            raise UsageError(f"slip datasets need 2 or 3 layers, not {self.layers}")
        if self.task == "twist" and self.family != "parallel":
            raise UsageError("twist datasets have no stacking family (θ near 60° is the "
                             "antiparallel side)")
        if self.task == "slip":
            from stackview.core.labels import SlipLabels

            SlipLabels(self.material, layers=self.layers, family=self.family)  # validates
        if self.count < 1 or self.positions < 1:
            raise UsageError("count and positions must be at least 1")
        if not (0.005 <= self.step_A <= 5):
            raise UsageError(f"the grid step {self.step_A:g} Å must be between 0.005 and 5 Å")
        if not (0.001 <= self.theta_step_deg <= 30):
            raise UsageError("the twist step must be between 0.001 and 30 degrees")
        set_("theta_range_deg", _pair(self.theta_range_deg, "the twist range"))
        if not (0.02 <= self.sampling_A <= 2.0):
            raise UsageError(f"the sampling {self.sampling_A:g} Å/px must be between 0.02 and 2")
        if not (16 <= self.patch_px <= 2048):
            raise UsageError(f"the patch size {self.patch_px} px must be between 16 and 2048")
        if not self.optics:
            from stackview.materials import get_material

            name = get_material(self.material).name
            set_("material", name)
            set_("optics", DEFAULT_OPTICS.get(name, FALLBACK_OPTICS))
        from stackview.simulation import PRESETS, optics_text, resolve_optics

        optics = resolve_optics(self.optics)  # a sentence now, not a KeyError mid-generation
        if self.optics not in PRESETS:
            set_("optics", optics_text(optics))  # one spelling of the same conditions
        set_("defocus_A", tuple(float(v) for v in self.defocus_A))
        set_("source_size_A", tuple(float(v) for v in self.source_size_A))
        if not self.defocus_A or not self.source_size_A:
            raise UsageError("give at least one defocus and one source size")
        if not self.orientation:
            set_("orientation", "random" if self.task == "twist" else "aligned")
        if self.orientation not in ORIENTATIONS:
            raise UsageError("orientation must be 'aligned' or 'random'")
        if self.task == "slip" and self.orientation == "random":
            from stackview.core.labels import projected_symmetry

            order, _ = projected_symmetry(self.material)
            if order > 2:
                raise UsageError(
                    f"random orientation is not possible for {self.material} slip: its "
                    f"{order}-fold monolayer makes rotated slips ambiguous; use 'aligned'"
                )
        set_("vacancy_range", _pair(self.vacancy_range, "the vacancy range"))
        if not (0 <= self.vacancy_range[0] and self.vacancy_range[1] < 0.5):
            raise UsageError("vacancy ratios must be between 0 and 0.5")
        for name in ("hole_probability", "mask_probability", "contamination_probability",
                     "noise_probability"):
            if not (0 <= getattr(self, name) <= 1):
                raise UsageError(f"{name.replace('_', ' ')} must be between 0 and 1")
        if not (0 < self.hole_max_fraction <= 0.5) or not (0 < self.mask_max_fraction <= 0.5):
            raise UsageError("hole and mask fractions must be in (0, 0.5]")
        if self.psnr_range_dB is not None:
            lo, hi = _pair(self.psnr_range_dB, "the PSNR range")
            if not (0 < lo <= hi < 100):
                raise UsageError("the PSNR range must satisfy 0 < low <= high < 100 dB")
            set_("psnr_range_dB", (lo, hi))
        if not (1 <= self.chunk <= 4096):
            raise UsageError("the chunk size must be between 1 and 4096 patches")
        set_("physics", dict(self.physics))
        set_("seed", int(self.seed))

    @property
    def patch_nm(self) -> float:
        return self.patch_px * self.sampling_A / 10.0

    @property
    def n_outputs(self) -> int:
        if self.task == "twist":
            return 1
        return 2 * (self.layers - 1) + (1 if self.family == "both" else 0)

    def label_space(self):
        from stackview.core.labels import SlipLabels, TwistLabels

        if self.task == "twist":
            return TwistLabels(self.material)
        return SlipLabels(self.material, layers=self.layers, family=self.family)

    def label_names(self) -> tuple[str, ...]:
        if self.task == "twist":
            return ("theta_deg",)
        return tuple(n if n == "family" else f"{n}_A" for n in self.label_space().names)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        for key, value in data.items():
            if isinstance(value, tuple):
                data[key] = list(value)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> DatasetSpec:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise UsageError(f"unknown dataset settings: {', '.join(sorted(unknown))}")
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**kwargs)

    def replace(self, **changes) -> DatasetSpec:
        return dataclasses.replace(self, **changes)
