"""ADF-STEM by abTEM multislice (slow, for validation and small accurate sets).

The structure is cut to the field of view plus a ``buffer_A`` on every side and put in a
periodic orthogonal box (the buffer keeps the periodic images of the box away from the
probe while it scans the field of view). abTEM builds the projected potential (Lobato
parametrisation, infinite projection, ``slice_thickness_A`` slices) at a sampling fine enough
for the detector's outer angle, scans the field of view (plus a one-or-two-pixel border) at
the probe's Nyquist step ``lambda / (4 alpha)`` with ``Probe`` + ``GridScan`` +
``AnnularDetector`` (or PRISM ``SMatrix`` with ``prism_interpolation``, slower on a CPU for
few-nm boxes), and the scan is then
resampled to ``sampling_A`` by trigonometric (Fourier) interpolation of the mirror-extended
scan, evaluated exactly at the output pixel centres (same convention as the incoherent
simulator, :mod:`.grid`). The Gaussian source-size blur is applied in the same step. An ADF
image is band-limited to ``2 alpha / lambda``, so Nyquist scanning loses nothing.

Optional frozen phonons (``num_frozen_phonons`` configurations with ``phonon_sigma_A``
displacements) add thermal diffuse scattering at a proportional cost. abTEM is imported
inside the functions only; this module must not import Qt.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from .grid import pixel_centers_A
from .optics import Optics

__all__ = ["simulate_multislice", "fourier_resample_matrix"]

logger = logging.getLogger(__name__)


def fourier_resample_matrix(
    n_samples: int, positions: np.ndarray, sigma_samples: float = 0.0
) -> np.ndarray:
    """Matrix that evaluates the trigonometric interpolant of mirror-extended samples.

    The samples ``f[0..n-1]`` (at coordinates 0..n-1) are extended symmetrically to period
    ``2 n`` (``f[-1 - m] = f[m]``), which removes the edge jump an ordinary periodic Fourier
    interpolation would ring on; the band-limited interpolant is evaluated at ``positions``
    (in sample units) and optionally blurred by a Gaussian of standard deviation
    ``sigma_samples`` (samples).

    Returns
    -------
    numpy.ndarray
        Real array of shape ``(len(positions), n_samples)``.
    """
    n = int(n_samples)
    period = 2 * n
    positions = np.asarray(positions, dtype=float)
    freqs = np.fft.fftfreq(period)  # cycles / sample
    # Extension matrix (2n x n): [f0..f_{n-1}, f_{n-1}..f0].
    ext = np.zeros((period, n))
    ext[np.arange(n), np.arange(n)] = 1.0
    ext[n + np.arange(n), n - 1 - np.arange(n)] = 1.0
    dft = np.exp(-2j * np.pi * np.outer(freqs, np.arange(period)))  # (2n, 2n)
    spectrum = dft @ ext  # (2n, n)
    if sigma_samples > 0:
        spectrum *= np.exp(-2.0 * np.pi**2 * sigma_samples**2 * freqs**2)[:, None]
    basis = np.exp(2j * np.pi * np.outer(positions, freqs)) / period  # (m, 2n)
    # For even length the Nyquist bin's real part with cos(pi x) is the symmetric choice;
    # taking the real part of the sum does exactly that.
    return np.real(basis @ spectrum)


class _DaskProgress:
    """dask callback that forwards finished/total task counts to ``progress(done, total)``."""

    def __new__(cls, progress: Callable[[int, int], None]):
        from dask.callbacks import Callback

        class _Callback(Callback):
            def __init__(self) -> None:
                super().__init__()
                self._total = 0
                self._done = 0

            def _start_state(self, dsk, state):  # noqa: ANN001
                self._total = sum(
                    len(state[k]) for k in ("ready", "waiting", "running", "finished")
                )
                self._done = len(state["finished"])
                progress(self._done, max(self._total, 1))

            def _posttask(self, key, result, dsk, state, worker_id):  # noqa: ANN001
                self._done += 1
                progress(min(self._done, self._total), max(self._total, 1))

        return _Callback()


def _fft_friendly(n: int) -> int:
    """Smallest even integer >= n whose prime factors are all 2, 3, 5 or 7."""
    m = max(2, int(n))
    while True:
        if m % 2 == 0:
            r = m
            for p in (2, 3, 5, 7):
                while r % p == 0:
                    r //= p
            if r == 1:
                return m
        m += 1


def _potential_sampling_A(optics: Optics) -> float:
    """Coarsest potential sampling whose anti-aliased angular range covers the detector."""
    # abTEM keeps 2/3 of the Nyquist frequency: cutoff angle = (2/3) * lambda / (2 s).
    return 0.95 * optics.wavelength_A / (3.0 * optics.adf_outer_mrad * 1e-3)


def simulate_multislice(
    atoms: Any,
    optics: Optics,
    sampling_A: float,
    shape: tuple[int, int],
    origin_A: tuple[float, float],
    progress: Callable[[int, int], None] | None = None,
    *,
    buffer_A: float = 5.0,
    potential_sampling_A: float | None = None,
    slice_thickness_A: float = 2.0,
    scan_sampling_A: float | None = None,
    prism_interpolation: int | None = None,
    num_frozen_phonons: int = 0,
    phonon_sigma_A: float = 0.08,
    seed: int | None = None,
    num_workers: int | None = None,
    parametrization: str = "lobato",
) -> tuple[np.ndarray, dict[str, Any]]:
    """abTEM multislice ADF-STEM image on the incoherent simulator's pixel grid.

    Parameters
    ----------
    atoms : ase.Atoms
        Structure extending past the field of view (only atoms within ``buffer_A`` of it
        are simulated).
    optics : Optics
        Imaging conditions.
    sampling_A : float
        Output pixel size in Å.
    shape : (int, int)
        Output shape (ny, nx).
    origin_A : (float, float)
        Lower corner of the field of view in Å.
    progress : callable, optional
        ``progress(done, total)`` over the dask tasks of the scan.
    buffer_A : float
        Structure kept around the field of view, and the distance of the periodic box edge
        from it, in Å.
    potential_sampling_A : float, optional
        Potential / wave sampling in Å (default: just fine enough for the detector's outer
        angle after abTEM's 2/3 anti-aliasing: 0.031 Å at 300 kV / 200 mrad); the grid is
        rounded up to an FFT-friendly size.
    slice_thickness_A : float
        Multislice slice thickness in Å.
    scan_sampling_A : float, optional
        Probe step in Å (default and maximum: the Nyquist step ``lambda / (4 alpha)``).
    prism_interpolation : int, optional
        Use PRISM (``SMatrix``) with this interpolation factor instead of plain multislice.
        On a CPU and a few-nm box this is *slower* (measured here: 2 nm ReS2 at 300 kV,
        interpolation 2: ~6 s per probe position against ~0.25 s), because the reduction
        sums thousands of plane waves per position; it pays off on GPUs and large scans.
    num_frozen_phonons : int
        Frozen-phonon configurations (0: a single static structure).
    phonon_sigma_A : float
        Isotropic rms displacement of the frozen phonons in Å.
    seed : int, optional
        Seed of the frozen phonons.
    num_workers : int, optional
        dask threads (default: all CPUs); FFTW runs one thread per task.
    parametrization : str
        abTEM potential parametrisation ("lobato" or "kirkland").

    Returns
    -------
    image : numpy.ndarray
        float32 array of shape ``shape``.
    details : dict
        JSON-serialisable description of the calculation.
    """
    import abtem
    import dask
    from ase import Atoms

    ny, nx = shape
    x0, y0 = origin_A
    fov_x, fov_y = nx * sampling_A, ny * sampling_A
    if buffer_A <= 0:
        raise ValueError(f"buffer_A must be > 0 Å, got {buffer_A!r}.")
    nyquist = optics.nyquist_sampling_A
    step = nyquist if scan_sampling_A is None else min(float(scan_sampling_A), nyquist)

    # Scan the field of view plus a border of >= 2 steps, so that the mirror extension used
    # for interpolation sits outside the output pixels.
    border = 2.0 * step
    scan_x0, scan_y0 = x0 - border, y0 - border
    n_scan_x = int(math.ceil((fov_x + 2 * border) / step)) + 1
    n_scan_y = int(math.ceil((fov_y + 2 * border) / step)) + 1
    step_x = (fov_x + 2 * border) / (n_scan_x - 1)
    step_y = (fov_y + 2 * border) / (n_scan_y - 1)

    # Structure within the buffer, in a periodic orthogonal box with the FOV at (buffer, buffer).
    pos = np.asarray(atoms.positions, dtype=float)
    keep = (
        (pos[:, 0] >= x0 - buffer_A)
        & (pos[:, 0] < x0 + fov_x + buffer_A)
        & (pos[:, 1] >= y0 - buffer_A)
        & (pos[:, 1] < y0 + fov_y + buffer_A)
    )
    if not np.any(keep):
        raise ValueError("No atoms lie within the field of view and its buffer.")
    sub = Atoms(numbers=np.asarray(atoms.numbers)[keep], positions=pos[keep].copy())
    z = sub.positions[:, 2]
    sub.positions[:, 0] -= x0 - buffer_A
    sub.positions[:, 1] -= y0 - buffer_A
    sub.positions[:, 2] -= z.min() - 1.0
    box_x, box_y = fov_x + 2 * buffer_A, fov_y + 2 * buffer_A
    sub.cell = [box_x, box_y, float(np.ptp(z)) + 2.0]
    sub.pbc = True

    s_pot = (
        _potential_sampling_A(optics)
        if potential_sampling_A is None
        else float(potential_sampling_A)
    )
    # FFT-friendly grid (7-smooth, even): a bad size (e.g. 1027 = 13 x 79) is several times slower
    gpts = (_fft_friendly(math.ceil(box_x / s_pot)), _fft_friendly(math.ceil(box_y / s_pot)))
    num_workers = max(1, os.cpu_count() or 1) if num_workers is None else int(num_workers)
    # abTEM settings for this call only: no tqdm bar (progress goes to the callback), one FFTW
    # thread per dask task (num_workers tasks run at once), CPU.
    settings = {"diagnostics.progress_bar": False, "fftw.threads": 1, "device": "cpu"}

    structure: Any = sub
    if num_frozen_phonons > 0:
        structure = abtem.FrozenPhonons(
            sub, num_configs=int(num_frozen_phonons), sigmas=float(phonon_sigma_A), seed=seed
        )
    potential = abtem.Potential(
        structure,
        gpts=gpts,
        slice_thickness=slice_thickness_A,
        projection="infinite",
        parametrization=parametrization,
    )
    scan = abtem.GridScan(
        start=(scan_x0 - (x0 - buffer_A), scan_y0 - (y0 - buffer_A)),
        end=(
            scan_x0 - (x0 - buffer_A) + step_x * n_scan_x,
            scan_y0 - (y0 - buffer_A) + step_y * n_scan_y,
        ),
        gpts=(n_scan_x, n_scan_y),
        endpoint=False,
    )
    detector = abtem.AnnularDetector(inner=optics.adf_inner_mrad, outer=optics.adf_outer_mrad)
    energy_eV = optics.energy_kV * 1e3
    if prism_interpolation:
        s_matrix = abtem.SMatrix(
            potential=potential,
            energy=energy_eV,
            semiangle_cutoff=optics.convergence_mrad,
            interpolation=int(prism_interpolation),
        )
        ctf = abtem.CTF(
            semiangle_cutoff=optics.convergence_mrad,
            energy=energy_eV,
            defocus=optics.defocus_A,
            Cs=optics.Cs_A,
        )
        measurement = s_matrix.scan(scan=scan, detectors=detector, ctf=ctf, lazy=True)
        engine = f"abtem.SMatrix (PRISM, interpolation {int(prism_interpolation)})"
    else:
        probe = abtem.Probe(
            semiangle_cutoff=optics.convergence_mrad,
            energy=energy_eV,
            defocus=optics.defocus_A,
            Cs=optics.Cs_A,
        )
        measurement = probe.scan(potential, scan=scan, detectors=detector, lazy=True)
        engine = "abtem.Probe multislice"

    with contextlib.ExitStack() as stack:
        stack.enter_context(abtem.config.set(settings))
        stack.enter_context(dask.config.set(scheduler="threads", num_workers=num_workers))
        if progress is not None:
            stack.enter_context(_DaskProgress(progress))
        measurement = measurement.compute(progress_bar=False)
    scanned = np.asarray(measurement.array, dtype=np.float64)
    if scanned.ndim > 2:  # frozen-phonon axis not reduced by abTEM
        scanned = scanned.reshape((-1,) + scanned.shape[-2:]).mean(axis=0)
    scanned = scanned.T  # abTEM indexes (x, y); rows along y here

    positions = scan.get_positions()  # (n_scan_x, n_scan_y, 2), box coordinates
    sx = positions[:, 0, 0] + (x0 - buffer_A)
    sy = positions[0, :, 1] + (y0 - buffer_A)
    px, py = pixel_centers_A(shape, sampling_A, origin_A)
    sigma_A = optics.source_size_A / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    wx = fourier_resample_matrix(len(sx), (px - sx[0]) / (sx[1] - sx[0]), sigma_A / (sx[1] - sx[0]))
    wy = fourier_resample_matrix(len(sy), (py - sy[0]) / (sy[1] - sy[0]), sigma_A / (sy[1] - sy[0]))
    image = wy @ scanned @ wx.T

    details = {
        "engine": engine,
        "abtem_version": abtem.__version__,
        "potential_sampling_A": [float(box_x / gpts[0]), float(box_y / gpts[1])],
        "potential_gpts": [int(g) for g in potential.gpts],
        "slice_thickness_A": float(slice_thickness_A),
        "parametrization": parametrization,
        "buffer_A": float(buffer_A),
        "scan_step_A": [float(sx[1] - sx[0]), float(sy[1] - sy[0])],
        "scan_gpts": [int(len(sy)), int(len(sx))],
        "num_frozen_phonons": int(num_frozen_phonons),
        "phonon_sigma_A": float(phonon_sigma_A) if num_frozen_phonons else 0.0,
        "n_atoms_simulated": int(len(sub)),
    }
    return image.astype(np.float32), details
