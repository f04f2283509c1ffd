"""stackview.simulation against abTEM: the numpy probe, the scattering factors, multislice."""

import json

import numpy as np
import pytest

from stackview.simulation import PRESETS, probe_intensity, simulate
from stackview.simulation.cross_sections import electron_scattering_factor_A

abtem = pytest.importorskip("abtem")

RES2 = PRESETS["ReS2-300kV"]
MOS2 = PRESETS["MoS2-60kV"]


@pytest.mark.parametrize(
    "optics, gpts, sampling",
    [
        (RES2, (256, 256), 0.05),
        (MOS2, (256, 256), 0.05),
        (MOS2.replace(defocus_A=-60.0, Cs_A=2e5), (192, 160), 0.07),
        (RES2.replace(defocus_A=0.0, Cs_A=5e4, convergence_mrad=30.0), (128, 128), 0.04),
    ],
)
def test_probe_intensity_matches_abtem(optics, gpts, sampling):
    probe = abtem.Probe(
        semiangle_cutoff=optics.convergence_mrad,
        energy=optics.energy_kV * 1e3,
        defocus=optics.defocus_A,
        Cs=optics.Cs_A,
        gpts=gpts[::-1],  # abTEM indexes (x, y)
        sampling=sampling,
    )
    theirs = np.asarray(probe.build().intensity().compute().array, dtype=np.float64).T
    theirs /= theirs.sum()
    ours = probe_intensity(optics, gpts, sampling)
    assert ours.shape == theirs.shape
    assert np.unravel_index(ours.argmax(), ours.shape) == np.unravel_index(
        theirs.argmax(), theirs.shape
    )
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-4 * theirs.max())
    # radial profiles agree too
    cy, cx = gpts[0] // 2, gpts[1] // 2
    np.testing.assert_allclose(ours[cy, cx:], theirs[cy, cx:], atol=1e-4 * theirs.max())


def test_scattering_factors_match_abtem():
    from abtem.parametrizations import KirklandParametrization, LobatoParametrization

    k = np.linspace(0.0, 4.0, 41)
    for name, cls in [("kirkland", KirklandParametrization), ("lobato", LobatoParametrization)]:
        for symbol, z in [("S", 16), ("Mo", 42), ("Re", 75)]:
            theirs = cls().scattering_factor(symbol)(k**2)
            ours = electron_scattering_factor_A(z, k, name)
            np.testing.assert_allclose(ours, theirs, rtol=1e-5)


def _ncc(a, b):
    a = (a - a.mean()) / a.std()
    b = (b - b.mean()) / b.std()
    return float((a * b).mean())


def test_multislice_agrees_with_incoherent_on_a_tiny_bilayer():
    from stackview.materials import build_stack

    atoms = build_stack("MoS2", slips_A=[(1.0, 0.5)], fov_A=(4.0, 4.0), margin_A=10.0)
    calls = []
    ms = simulate(
        atoms,
        MOS2,
        0.2,
        4.0,
        method="multislice",
        progress=lambda d, t: calls.append((d, t)),
        buffer_A=4.0,
        slice_thickness_A=2.0,
    )
    inc = simulate(atoms, MOS2, 0.2, 4.0)
    assert ms.image.shape == inc.image.shape == (20, 20)
    assert ms.image.dtype == np.float32 and ms.method == "multislice"
    assert calls and calls[-1][0] == calls[-1][1]
    meta = json.loads(json.dumps(ms.metadata))
    assert meta["method_details"]["scan_step_A"][0] <= MOS2.nyquist_sampling_A + 1e-9
    ncc = _ncc(ms.image, inc.image)
    print(f"NCC(multislice, incoherent) = {ncc:.3f}")
    assert ncc >= 0.9
    # same units (fraction of the probe on the detector), same order of magnitude
    assert 0.5 < ms.image.mean() / inc.image.mean() < 2.0
    # bright (Mo) and dark (S, vacuum) pixels are the same pixels in both
    bright_ms = ms.image > np.percentile(ms.image, 90)
    bright_inc = inc.image > np.percentile(inc.image, 90)
    assert (bright_ms & bright_inc).sum() >= 0.7 * bright_ms.sum()
