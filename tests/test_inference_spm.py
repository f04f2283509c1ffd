"""SPM map geometry with a stub model whose 'slip' is a function of the window's content."""

import numpy as np
import pytest
import torch

from stackview.engine.jobs import CancelToken
from stackview.errors import Cancelled, UsageError
from stackview.inference.spm import refine_map, resample_to_model, spm_map
from stackview.models.bundle import Bundle
from stackview.models.card import ModelCard


class MeanModel(torch.nn.Module):
    """Predicts Da = mean intensity of the window (Å), Db = 0.5 Å."""

    def forward(self, x):
        if x.ndim == 3:
            x = x.unsqueeze(1)
        m = x.mean(dim=(1, 2, 3))
        return torch.stack([m, torch.full_like(m, 0.5)], dim=1)


@pytest.fixture
def stub_bundle():
    card = ModelCard(name="stub", spec={"backbone": "resnet18", "task": "slip",
                                        "material": "ReS2", "layers": 2},
                     sampling_A=0.2, patch_px=20)
    return Bundle(model=MeanModel().eval(), card=card)


def two_domain_image(boundary_px=150, size=(120, 300)):
    img = np.full(size, 1.0, np.float32)
    img[:, boundary_px:] = 2.0
    return img


def test_grid_geometry_and_step_position(stub_bundle):
    # 0.02 nm/px image = 0.2 Å/px = the model's sampling: windows 20 px = 0.4 nm
    img = two_domain_image()
    smap = spm_map(img, 0.02, stub_bundle, stride_nm=0.1, n_views=1)
    assert smap.window_nm == pytest.approx(0.4)
    assert smap.stride_nm == pytest.approx(0.1)
    assert smap.values.shape == (len(smap.y_nm), len(smap.x_nm), 2)
    assert np.allclose(np.diff(smap.x_nm), 0.1)
    assert smap.x_nm.min() >= 0.2 - 1e-9 and smap.x_nm.max() <= 300 * 0.02 - 0.2 + 1e-9
    da = smap.values[0, :, 0]
    # the map steps from 1 to 2 where the window centre crosses the boundary at 3.0 nm
    left = smap.x_nm[da < 1.0 + 1e-6]
    right = smap.x_nm[da > 2.0 - 1e-6]
    assert left.max() < 3.0 < right.min()
    assert right.min() - left.max() <= 0.4 + 0.1 + 1e-9  # one window + one stride
    mid = (da - 1.0).searchsorted(0.5) if np.all(np.diff(da) >= 0) else None
    assert mid is not None
    assert abs(smap.x_nm[mid] - 3.0) <= 0.1 + 1e-9  # half-way point within one stride
    assert smap.n_patches == smap.values.shape[0] * smap.values.shape[1]
    assert np.all(smap.values[..., 1] == pytest.approx(0.5))


def test_resampling_keeps_physical_geometry(stub_bundle):
    # same scene at 0.01 nm/px: the step must appear at the same place in nm
    img = np.repeat(np.repeat(two_domain_image(), 2, axis=0), 2, axis=1)
    assert resample_to_model(img, 0.01, 0.2).shape == (120, 300)
    smap = spm_map(img, 0.01, stub_bundle, stride_nm=0.1, n_views=1)
    da = smap.values[0, :, 0]
    idx = np.argmin(np.abs(da - 1.5))
    assert abs(smap.x_nm[idx] - 3.0) <= 0.1 + 1e-9


def test_roi_limits_windows(stub_bundle):
    img = two_domain_image()
    smap = spm_map(img, 0.02, stub_bundle, stride_nm=0.1, roi_nm=(1.0, 0.5, 2.5, 2.0), n_views=1)
    assert smap.x_nm.min() - 0.2 >= 1.0 - 1e-9 and smap.x_nm.max() + 0.2 <= 2.5 + 1e-9
    assert smap.y_nm.min() - 0.2 >= 0.5 - 1e-9 and smap.y_nm.max() + 0.2 <= 2.0 + 1e-9


def test_refine_evaluates_only_near_the_interface(stub_bundle):
    img = two_domain_image(size=(120, 400), boundary_px=210)
    smap = refine_map(img, 0.02, stub_bundle, coarse_stride_nm=0.8, fine_stride_nm=0.1,
                      threshold=0.3, n_views=1)
    levels = smap.points[:, -1]
    fine = smap.points[levels == 1]
    assert len(fine) > 0
    assert np.all(np.abs(fine[:, 0] - 4.2) <= 0.8 * 2 + 0.2)
    full = spm_map(img, 0.02, stub_bundle, stride_nm=0.1, n_views=1)
    assert len(fine) < full.n_patches / 2
    da = smap.values[0, :, 0]
    idx = np.argmin(np.abs(da - 1.5))
    assert abs(smap.x_nm[idx] - 4.2) <= 0.1 + 1e-9


def test_cancel_and_bad_input(stub_bundle):
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        spm_map(two_domain_image(), 0.02, stub_bundle, cancel=token, n_views=1)
    with pytest.raises(UsageError, match="windows"):
        spm_map(two_domain_image(), 0.02, stub_bundle, window_nm=3.0)
    with pytest.raises(UsageError, match="smaller than the model"):
        spm_map(two_domain_image(), 0.0005, stub_bundle)


def test_window_sampler_rotated_and_mirrored_frames():
    from stackview.core.frame import Frame
    from stackview.inference.spm import WindowSampler

    rng = np.random.default_rng(0)
    img = ndimage_smooth(rng.random((80, 80)).astype(np.float32))
    plain = WindowSampler(img, 0.02, 0.2, 20).extract([[40.0, 40.0]])[0]
    # a frame rotating by +90° (x -> y): the aligned window is the plain one turned by 90°
    rot = WindowSampler(img, 0.02, 0.2, 20, Frame(90.0, False, (0, 1), (-1, 0), 0.0))
    turned = rot.extract([[40.0, 40.0]])[0]
    np.testing.assert_allclose(turned, _rotate_xy_90(plain), atol=1e-4)
    mir = WindowSampler(img, 0.02, 0.2, 20, Frame(0.0, True, (1, 0), (0, -1), 0.0))
    np.testing.assert_allclose(mir.extract([[40.0, 40.0]])[0], plain[::-1, :], atol=1e-4)


def _rotate_xy_90(w):
    # aligned(x', y') = original(R^-1 (x', y')) with R rotating +90° in the (x=col, y=row) frame:
    # original offset (x, y) = (y', -x')
    P = w.shape[0]
    out = np.empty_like(w)
    for yp in range(P):
        for xp in range(P):
            xo, yo = yp, P - 1 - xp
            out[yp, xp] = w[yo, xo]
    return out


def ndimage_smooth(a):
    from scipy import ndimage

    return ndimage.gaussian_filter(a, 2)


