"""The physics fit: renderer against the simulator, recovery, uncertainty, folding, cancel."""

import numpy as np
import pytest
import torch

from stackview.engine.jobs import CancelToken
from stackview.errors import Cancelled, UsageError
from stackview.fit import FitSettings, WindowFitter, fit_window, fit_windows
from stackview.fit.renderer import SlipRenderer
from stackview.core.labels import SlipLabels
from stackview.materials import build_stack, get_material
from stackview.simulation import PRESETS, simulate

OPTICS = PRESETS["ReS2-300kV"]
S = 0.16  # the bundled ReS2 model's sampling (Å/px)


def clean_window(slips, px=48, origin_A=(0.0, 0.0), material="ReS2"):
    """Noise-free grid-simulator window (the project's simulate on build_stack)."""
    fov = (px * S, px * S)
    atoms = build_stack(material, np.reshape(slips, (-1, 2)), fov_A=fov, margin_A=10,
                        origin_A=origin_A)
    return simulate(atoms, OPTICS, sampling_A=S, fov_A=fov).image


def noisy(image, dose, rng):
    """Poisson counts at ``dose`` counts per pixel for the brightest pixel, in count units."""
    return rng.poisson(dose * image / image.max()).astype(np.float32)


@pytest.fixture(autouse=True)
def _one_thread():
    # the fit runs on one thread (oversubscribed threads slow a shared machine 10x)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_renderer_matches_the_grid_simulator_and_places_the_stack():
    """The Fourier-series renderer is the simulator's model: same image (NCC > 0.9999) with
    the stack where the builders put it (origin measured from the window centre)."""
    px = 48
    origin = np.array([0.7, -0.3])
    sim = clean_window((1.0, 1.5), px, origin)
    r = SlipRenderer("ReS2", 2, OPTICS, S, (px, px), dtype=torch.float64)
    theta = r.default_theta([[1.0, 1.5]], [origin - px * S / 2])
    img = r.lattice_image(theta)[0].numpy()
    core = (slice(8, -8), slice(8, -8))
    a, b = sim[core] - sim[core].mean(), img[core] - img[core].mean()
    assert (a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()) > 0.9999
    # the contrast agrees to the simulator's dropped probe tail (~1 %)
    assert b.std() == pytest.approx(a.std(), rel=0.02)
    # a stack moved by 0.3 Å no longer matches as well: the origin convention is tested
    moved = r.lattice_image(r.default_theta([[1.0, 1.5]], [origin - px * S / 2 + 0.3]))[0]
    m = moved.numpy()[core] - moved.numpy()[core].mean()
    assert (a * m).sum() / np.sqrt((a * a).sum() * (m * m).sum()) < 0.99


def test_fast_jacobian_equals_torch_autograd():
    r = SlipRenderer("ReS2", 3, OPTICS, S, (20, 24), dtype=torch.float64, response_degree=3)
    theta = r.default_theta([[1.0, 1.5, 0.3, 2.0]], [[0.3, -0.2]])
    theta[0, r.layout.strain] = torch.tensor([0.01, -0.005, 0.003, -0.008], dtype=torch.float64)
    theta[0, r.layout.light] = 0.8
    beta = torch.tensor([[1.3, 20.0, -300.0, 0.1, 0.01, -0.02, 0.003, 0.001, 0.002]],
                        dtype=torch.float64)
    model, Jt, _ = r.model_and_jacobian(theta, beta)
    jt, jb = torch.autograd.functional.jacobian(
        lambda t, b: r.render(t, b).reshape(1, -1), (theta, beta))
    auto = torch.cat([jt[0, :, 0], jb[0, :, 0]], dim=1)
    assert torch.allclose(model, r.render(theta, beta).reshape(1, -1), atol=1e-14)
    scale = auto.abs().amax(dim=0)
    assert ((Jt[0].T - auto).abs().amax(dim=0) <= 1e-9 * scale + 1e-15).all()


def test_synthetic_window_is_recovered_at_high_dose():
    """Known slip, origin and imaging: the fit finds the slip to < 0.01 Å from a start 0.1 Å
    off, the blur and scale of the simulation, and reports a σ that covers its error."""
    rng = np.random.default_rng(1)
    truth = np.array([1.23, 2.71])
    origin = np.array([1.9, 0.6])
    img = noisy(clean_window(truth, 64, origin), 2e5, rng)
    res = fit_window(img, truth + [0.07, -0.07], "ReS2", OPTICS, S)
    space = SlipLabels("ReS2")
    err = float(space.distance(res.labels[0], truth))
    assert err < 0.005
    assert res.converged[0]
    assert 0 < res.sigma[0].max() < 0.005
    assert err < 4 * res.sigma_D_A[0]
    assert res.params["source_fwhm_A"][0] == pytest.approx(OPTICS.source_size_A, abs=0.05)
    assert np.abs([res.params[k][0] for k in ("Exx", "Exy", "Eyx", "Eyy")]).max() < 2e-3
    assert res.ncc[0] > 0.99
    assert 0.8 < res.chi2_red[0] < 1.3
    # the dose read from the image: mean counts per pixel of the simulated counts
    assert res.dose_per_px[0] == pytest.approx(img.mean(), rel=0.15)
    assert res.moved_A[0] == pytest.approx(float(space.distance(truth + [0.07, -0.07],
                                                                res.labels[0])), abs=1e-9)


def test_uncertainty_shrinks_as_one_over_root_dose():
    rng = np.random.default_rng(2)
    truth = np.array([2.2, 0.9])
    clean = clean_window(truth, 48, (0.4, 0.2))
    doses = [300.0, 3000.0, 30000.0]
    sig = []
    for dose in doses:
        res = fit_windows(np.stack([noisy(clean, dose, rng) for _ in range(3)]),
                          np.tile(truth, (3, 1)), "ReS2", OPTICS, S)
        sig.append(np.median(res.sigma_D_A))
        # the estimated dose follows the true one
        assert np.median(res.dose_per_px) == pytest.approx(
            dose * clean.mean() / clean.max(), rel=0.2)
    ratios = np.array(sig[:-1]) / np.array(sig[1:])
    assert np.all((ratios > 0.75 * np.sqrt(10)) & (ratios < 1.3 * np.sqrt(10))), ratios


@pytest.mark.parametrize("truth, start", [
    ((1.50, -0.04), (1.50, 0.03)),   # across Db = 0: the canonical label is (|a| - 1.5, 0.04)
    ((-0.03, 1.20), (0.04, 1.20)),   # across Da = 0
    ((2.0, 3.30), (2.0, 3.22)),      # across Db = |b| / 2
])
def test_the_fit_never_leaves_the_label_domain(truth, start):
    rng = np.random.default_rng(3)
    space = SlipLabels("ReS2")
    img = noisy(clean_window(truth, 48, (0.3, 0.8)), 3e4, rng)
    res = fit_window(img, start, "ReS2", OPTICS, S)
    lab = res.labels[0]
    (a_lo, a_hi), (b_lo, b_hi) = space.domain_bounds_A()
    assert a_lo <= lab[0] < a_hi and b_lo <= lab[1] <= b_hi
    assert np.allclose(space.canonical(lab), lab)
    assert float(space.distance(lab, truth)) < 0.01
    # the raw fitted slip left the domain; the folded one is its equivalent
    raw = np.array([res.params["raw_Da_A"][0], res.params["raw_Db_A"][0]])
    assert float(space.distance(raw, lab)) < 1e-9
    assert np.all(res.sigma[0] > 0) and np.all(np.isfinite(res.sigma[0]))


def test_trilayer_window_is_recovered():
    rng = np.random.default_rng(4)
    truth = np.array([1.2, 2.5, 3.0, 0.9])
    img = noisy(clean_window(truth, 48, (0.2, 0.5)), 1e5, rng)
    space = SlipLabels("ReS2", layers=3)
    res = fit_window(img, np.asarray(space.canonical(truth)) + 0.04, "ReS2", OPTICS, S,
                     layers=3)
    assert float(space.distance(res.labels[0], truth)) < 0.02
    assert np.allclose(space.canonical(res.labels[0]), res.labels[0])


def test_adam_reference_reaches_the_same_slip():
    rng = np.random.default_rng(5)
    truth = np.array([3.1, 1.4])
    img = noisy(clean_window(truth, 32, (0.0, 0.0)), 3e4, rng)
    lm = fit_window(img, truth + 0.05, "ReS2", OPTICS, S)
    adam = fit_window(img, truth + 0.05, "ReS2", OPTICS, S,
                      settings=FitSettings(optimizer="adam", adam_steps=300))
    space = SlipLabels("ReS2")
    assert float(space.distance(adam.labels[0], lm.labels[0])) < 0.01


def test_cancel_stops_the_fit_between_batches():
    rng = np.random.default_rng(6)
    wins = np.stack([noisy(clean_window((1.0, 1.0), 24), 1e3, rng) for _ in range(3)])
    token = CancelToken()
    seen = []

    def progress(done, total, message=""):
        seen.append(done)
        token.cancel()

    fitter = WindowFitter("ReS2", "slip", 2, OPTICS, S, 24, FitSettings(batch_size=1))
    with pytest.raises(Cancelled):
        fitter.fit(wins, np.ones((3, 2)), progress=progress, cancel=token)
    assert seen == [1]


def test_bad_input_is_a_usage_error():
    with pytest.raises(UsageError):
        WindowFitter("MoS2", "twist", 3, OPTICS, S, 32)
    with pytest.raises(UsageError):
        WindowFitter("ReS2", "registry", 2, OPTICS, S, 32)
    fitter = WindowFitter("ReS2", "slip", 2, OPTICS, S, 24)
    with pytest.raises(UsageError, match="24"):
        fitter.fit(np.zeros((1, 20, 20)), [[1.0, 1.0]])
    with pytest.raises(UsageError, match="2 starting labels"):
        fitter.fit(np.zeros((1, 24, 24)), [[1.0, 1.0, 1.0]])
    with pytest.raises(UsageError):
        FitSettings(noise="laplacian")
    # an empty (constant) window is not fitted: NaN, not a number
    res = fitter.fit(np.zeros((1, 24, 24)), [[1.0, 1.0]])
    assert np.isnan(res.labels).all() and not res.converged[0]


def test_material_cell_is_the_builders_cell():
    """The renderer reads the basis from the material as the builders do (a guard against a
    second, diverging copy of the structure)."""
    m = get_material("ReS2")
    r = SlipRenderer(m, 2, OPTICS, S, (16, 16))
    assert r.material is m or r.material.name == m.name
    assert r.n_G > 100


def test_fit_map_reports_progress_and_cancels():
    """fit_map cuts the windows with the analysis's sampler and fits them in the order of the
    map's points; its progress callback can cancel it."""
    from types import SimpleNamespace

    from stackview.fit.maps import fit_map
    from stackview.inference.spm import WindowSampler

    rng = np.random.default_rng(7)
    truth = (1.1, 2.4)
    image = noisy(clean_window(truth, 96, (0.5, 0.5)), 2e4, rng)
    card = SimpleNamespace(task="slip", material="ReS2", layers=2, sampling_A=S, patch_px=32)
    sampler = WindowSampler(image, S / 10, S, 32)
    centres_nm = np.array([[4.0, 4.0], [7.0, 5.0], [5.0, 9.0]]) * S  # nm (image px * S / 10)
    pts = np.column_stack([centres_nm, np.tile(np.add(truth, 0.05), (3, 1)), np.zeros((3, 2))])
    smap = SimpleNamespace(points=pts, names=("Da_A", "Db_A"))
    seen = []
    res = fit_map(smap, sampler, S / 10, card, OPTICS, FitSettings(batch_size=2),
                  progress=lambda d, t, m="": seen.append((d, t, m)))
    assert seen[-1][:2] == (3, 3) and seen[-1][2] == "windows fitted"
    assert np.all(SlipLabels("ReS2").distance(res.labels, truth) < 0.02)
    token = CancelToken()

    def stop(done, total, message=""):
        token.cancel()

    with pytest.raises(Cancelled):
        fit_map(smap, sampler, S / 10, card, OPTICS, FitSettings(batch_size=1), progress=stop,
                cancel=token)


def test_analyze_fit_writes_fitted_labels_sigma_and_summary(tmp_path):
    """``stackview analyze --fit`` with the bundled ReS2 model on a simulated image of known
    slip: map.csv carries the fitted labels (near the truth), their σ, NCC and χ²;
    summary.json a fit block with medians and how many windows moved beyond their σ."""
    import csv
    import json

    from stackview.cli import main
    from stackview.io.tiff import write_calibrated_tiff

    rng = np.random.default_rng(8)
    fov = (40.0, 40.0)
    atoms = build_stack("ReS2", [(1.0, 1.5)], fov_A=fov, margin_A=10, origin_A=(0.3, 0.2))
    img = simulate(atoms, OPTICS, sampling_A=0.15, fov_A=fov).image
    img = rng.poisson(300 * img / img.max()).astype(np.float32)
    path = tmp_path / "res2.tif"
    write_calibrated_tiff(path, img, 0.015)
    out = tmp_path / "out"
    assert main(["analyze", str(path), "--material", "ReS2", "--fit", "--stride", "1.0",
                 "--views", "1", "--device", "cpu", "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "res2" / "map.csv")))
    space = SlipLabels("ReS2")
    fitted = np.array([[float(r["fit_Da_A"]), float(r["fit_Db_A"])] for r in rows])
    assert np.all(space.distance(fitted, (1.0, 1.5)) < 0.02)
    sig = np.array([[float(r["fit_sigma_Da_A"]), float(r["fit_sigma_Db_A"])] for r in rows])
    assert np.all((sig > 0) & (sig < 0.02))
    assert all(float(r["fit_ncc"]) > 0.8 and 0.5 < float(r["fit_chi2_red"]) < 3 for r in rows)
    summary = json.loads((out / "res2" / "summary.json").read_text())
    f = summary["fit"]
    assert f["n_windows"] == len(rows) == summary["n_patches"]
    assert f["Da_A_median"] == pytest.approx(1.0, abs=0.02)
    assert f["Db_A_median"] == pytest.approx(1.5, abs=0.02)
    assert 0 <= f["moved_more_than_sigma"] <= len(rows)
    assert "fit" in summary["stage_seconds"]


def jittered_window(slips, px, jitter_px, dose, rng, fine=4):
    """A window whose scan lines are displaced along x by ``jitter_px`` (sd, pixels): the
    probe positions sampled from a 4x finer simulation (a microscope's line jitter)."""
    from scipy import ndimage

    pad = 4
    side = (px + 2 * pad) * S
    atoms = build_stack("ReS2", [slips], fov_A=(side, side), margin_A=10, origin_A=(0.4, 0.9))
    img = simulate(atoms, OPTICS, sampling_A=S / fine, fov_A=(side, side)).image
    shifts = jitter_px * rng.standard_normal((px, 1))
    c = (fine - 1) / 2 + pad * fine
    rows = np.arange(px)[:, None] * fine + c + np.zeros((1, px))
    cols = (np.arange(px)[None, :] + shifts) * fine + c
    clean = ndimage.map_coordinates(img, [rows, cols], order=3)
    return rng.poisson(dose * clean / clean.max()).astype(np.float32), shifts[:, 0] * S


def test_scan_line_jitter_is_detected_and_fitted():
    """Line jitter (0.4 px) pulls a plain fit's slip beyond its σ; with scan_jitter="auto" the
    fit finds the jitter (each row's shift), and its σ covers the error. A window without
    jitter is left without row shifts."""
    rng = np.random.default_rng(9)
    truth = np.array([2.4, 1.1])
    space = SlipLabels("ReS2")
    wins, true_shifts = zip(*[jittered_window(truth, 48, 0.4, 2e3, rng) for _ in range(4)])
    wins = np.stack(wins)
    auto = fit_windows(wins, np.tile(truth + 0.03, (4, 1)), "ReS2", OPTICS, S)
    off = fit_windows(wins, np.tile(truth + 0.03, (4, 1)), "ReS2", OPTICS, S,
                      settings=FitSettings(scan_jitter="off"))
    assert np.all(auto.params["row_jitter_A"] > 0)
    jit = np.std(true_shifts, axis=1)
    assert np.allclose(auto.params["row_jitter_A"], jit, rtol=0.35)
    z_auto = np.abs(auto.labels - space.residual(auto.labels, truth)[1]) / auto.sigma
    z_off = np.abs(off.labels - space.residual(off.labels, truth)[1]) / off.sigma
    assert np.sqrt(np.mean(z_auto**2)) < 2.0 < np.sqrt(np.mean(z_off**2))
    assert np.all(off.params["row_jitter_A"] == 0)
    clean = noisy(clean_window(truth, 48, (0.4, 0.9)), 2e3, rng)
    res = fit_window(clean, truth + 0.03, "ReS2", OPTICS, S)
    assert res.params["row_jitter_A"][0] == 0


TWIST_OPTICS = PRESETS["MoS2-60kV"]
TS = 0.25  # the bundled MoS2 twist model's sampling (Å/px)


def twisted_window(theta_deg, px, turn_deg, rng, dose=None):
    """A twisted MoS2 bilayer window turned by ``turn_deg`` as a whole (the twist model reads
    windows in any orientation), the moiré at a random place."""
    from stackview.materials import build_twisted

    fov = (px * TS, px * TS)
    atoms = build_twisted("MoS2", theta_deg, fov_A=fov, margin_A=12,
                          top_shift_A=tuple(rng.uniform(0, 3, 2)),
                          origin_A=tuple(rng.uniform(0, 3, 2)))
    c, t = np.array(fov) / 2, np.radians(turn_deg)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    pos = atoms.positions.copy()
    pos[:, :2] = (pos[:, :2] - c) @ rot.T + c
    atoms.positions = pos
    img = simulate(atoms, TWIST_OPTICS, sampling_A=TS, fov_A=fov).image
    return img if dose is None else rng.poisson(dose * img / img.max()).astype(np.float32)


def test_twist_renderer_jacobian_equals_autograd():
    from stackview.fit.twist import TwistRenderer

    r = TwistRenderer("MoS2", TWIST_OPTICS, TS, (16, 20), dtype=torch.float64,
                      response_degree=2)
    theta = r.default_theta([21.8])
    theta[0, 1] = 17.0
    theta[0, 2:6] = torch.tensor([0.3, 0.1, -0.2, 0.5], dtype=torch.float64)
    theta[0, 6:10] = torch.tensor([0.01, -0.004, 0.003, 0.007], dtype=torch.float64)
    beta = torch.tensor([[1.0, 30.0, 0.1, 0.0, 0.01, 0.0, 0.0, 0.0]], dtype=torch.float64)
    _, Jt, _ = r.model_and_jacobian(theta, beta)
    jt, jb = torch.autograd.functional.jacobian(
        lambda t, b: r.render(t, b).reshape(1, -1), (theta, beta))
    auto = torch.cat([jt[0, :, 0], jb[0, :, 0]], dim=1)
    auto[:, r.layout.orientation] = 0.0  # held in the fit: its row is left empty
    scale = auto.abs().amax(dim=0)
    assert ((Jt[0].T - auto).abs().amax(dim=0) <= 1e-9 * scale + 1e-15).all()


def test_twisted_window_is_recovered_in_any_orientation():
    """θ = 21.8° turned by 137° as a whole, the moiré anywhere: the fit finds the orientation,
    both layers and θ to < 0.05° from a start 0.3° off, with a σ that covers the error."""
    rng = np.random.default_rng(10)
    img = twisted_window(21.8, 64, 137.0, rng, dose=2e4)
    res = fit_window(img, [22.1], "MoS2", TWIST_OPTICS, TS, task="twist")
    assert res.names == ("theta_deg",)
    assert abs(res.labels[0, 0] - 21.8) < 0.05
    assert abs(res.labels[0, 0] - 21.8) < 4 * res.sigma[0, 0] < 0.2
    assert res.ncc[0] > 0.99 and 0.8 < res.chi2_red[0] < 1.3
    assert res.params["orientation_deg"][0] % 60 == pytest.approx(137.0 % 60, abs=1.0)


def test_twist_fit_folds_into_the_twist_domain():
    """Starting readings outside [0°, 60°] (−12.2° ≡ 12.2°, 73.4° ≡ 46.6°) are folded in, and
    the fitted twists stay in the domain."""
    from stackview.core.labels import TwistLabels

    space = TwistLabels("MoS2")
    rng = np.random.default_rng(11)
    for truth, start in ((12.0, -12.2), (47.0, 73.4)):  # -12.2 ≡ 12.2, 73.4 ≡ 46.6
        img = twisted_window(truth, 48, 30.0, rng, dose=2e4)
        res = fit_window(img, [start], "MoS2", TWIST_OPTICS, TS, task="twist")
        lo, hi = space.domain_deg
        assert lo <= res.labels[0, 0] <= hi
        assert float(space.distance(res.labels[0, 0], truth)) < 0.1
