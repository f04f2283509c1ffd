"""Fit the incoherent model to analysis windows: refined labels, goodness of fit, uncertainty.

For each window (already cut in the model's frame and sampling, as
:class:`stackview.inference.spm.WindowSampler` cuts them) and a starting reading (the network's):

1. the stack's translation is found by correlating the model at the starting labels with the
   window over a grid of positions in one cell (:meth:`SlipRenderer.find_origin`), the detector
   response and background by linear least squares;
2. the noise model (Poisson + Gaussian: its dose from what the window holds beyond the probe's
   band limit, where the model has no power — :func:`estimate_noise`) gives the weights
   ``1 / var`` from the first step;
3. Levenberg–Marquardt on all parameters at once — slips, origin, local affine map (scale and
   shear), blur, the light atoms' cross-section factor, detector response (cubic), background
   polynomial — with the exact Jacobian of :class:`SlipRenderer` (torch); the noise is then
   measured again on the final residual;
4. where the windows' rows are the scan's lines and the residual shows line jitter
   (:meth:`WindowFitter._line_jitter`), a second Levenberg–Marquardt run adds one x shift per
   row (a Schur complement keeps the normal equations small);
5. goodness of fit (NCC of window and model, reduced χ² under the measured noise) and the
   Laplace covariance at the optimum (:func:`laplace_covariance`), marginal σ of the labels;
6. the labels folded into the material's canonical domain, the covariance carried along by the
   same symmetry operation (a slip that crossed the domain's edge during the fit is reported by
   its canonical equivalent, never outside the domain).

Windows are fitted in batches (one batched matrix product per model evaluation); windows that
have converged leave the batch. ``optimizer="adam"`` runs plain gradient descent (Adam, torch
autograd through :meth:`SlipRenderer.render`) instead — slower, kept as a reference.

Twisted bilayers are not fitted yet (their windows are not periodic with one cell); see
docs/fit.md. No Qt here.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np
import torch

from stackview.engine.jobs import CancelToken, null_progress
from stackview.errors import UsageError
from stackview.fit.renderer import FWHM_TO_SIGMA, SlipRenderer
from stackview.fit.settings import FitResult, FitSettings
from stackview.fit.uncertainty import estimate_noise, laplace_covariance

log = logging.getLogger(__name__)



class WindowFitter:
    """Fits windows of one material, task and imaging geometry (see the module docstring).

    Parameters
    ----------
    material
        Material or its name.
    task
        ``"slip"`` (twist is not fitted yet).
    layers
        2 or 3.
    optics
        The model card's imaging conditions.
    sampling_A, patch_px
        The windows' pixel size and side.
    settings
        :class:`FitSettings`.
    """

    def __init__(self, material, task: str, layers: int, optics, sampling_A: float,
                 patch_px: int | tuple[int, int], settings: FitSettings | None = None,
                 device: str | torch.device = "cpu") -> None:
        from stackview.core.labels import SlipLabels, TwistLabels

        if task not in ("slip", "twist"):
            raise UsageError(f"the physics fit serves slip and twist models, not {task!r}")
        if task == "twist" and layers != 2:
            raise UsageError("the physics fit serves twisted bilayers, not twisted trilayers")
        self.settings = settings or FitSettings()
        shape = (patch_px, patch_px) if np.ndim(patch_px) == 0 else tuple(patch_px)
        common = dict(background_degree=self.settings.background_degree, device=device,
                      response_degree=self.settings.response_degree)
        if task == "twist":
            from stackview.fit.twist import TwistRenderer

            self.renderer = TwistRenderer(material, optics, sampling_A, shape, **common)
            self.space = TwistLabels(self.renderer.material)
        else:
            self.renderer = SlipRenderer(material, layers, optics, sampling_A, shape, **common)
            self.space = SlipLabels(self.renderer.material, layers)
        self.task, self.layers = task, layers
        lay = self.renderer.layout
        free = torch.ones(lay.n_params, dtype=torch.bool)
        if task == "twist":
            free[lay.orientation] = False  # the affine map's rotation refines it
        if not self.settings.fit_strain:
            free[lay.strain] = False
        if not self.settings.fit_blur:
            free[lay.blur] = False
        if not self.settings.fit_light or not self.renderer.light_present:
            free[lay.light] = False
        self.free = free

    @property
    def names(self) -> tuple[str, ...]:
        if self.task == "twist":
            return ("theta_deg",)
        return tuple(f"{n}_A" for n in self.space.names)

    # --- the public call ------------------------------------------------------------------
    def fit(self, windows, start_labels, progress=null_progress,
            cancel: CancelToken | None = None, scan_rows: bool = True) -> FitResult:
        """Fit windows (N, P, P) from starting labels (N, n_labels) Å; see :class:`FitResult`.

        ``scan_rows``: whether the windows' rows are the microscope's scan lines (windows cut
        without rotation, or turned by 180°); with ``scan_jitter="auto"`` the rows' shifts are
        fitted only then."""
        cancel = cancel or CancelToken()
        t0 = time.perf_counter()
        w = np.asarray(windows, dtype=np.float32)
        if w.ndim == 2:
            w = w[None]
        if w.ndim != 3 or w.shape[1:] != self.renderer.shape:
            raise UsageError(f"the fit expects windows of {self.renderer.shape[0]} × "
                             f"{self.renderer.shape[1]} px, not {tuple(w.shape[-2:])}")
        start = np.asarray(start_labels, dtype=float).reshape(len(w), -1)
        if start.shape[1] != self.space.n_outputs:
            raise UsageError(f"the fit needs {self.space.n_outputs} starting labels per window, "
                             f"got {start.shape[1]}")
        good = np.isfinite(w).all(axis=(1, 2)) & np.isfinite(start).all(axis=1)
        good &= w.reshape(len(w), -1).std(axis=1) > 0
        start = np.where(good[:, None], start, 0.0)
        start = np.asarray(self.space.canonical(start))
        n = len(w)
        parts = []
        bs = self.settings.batch_size
        for s in range(0, n, bs):
            cancel.check()
            sl = slice(s, min(n, s + bs))
            rows = self.task == "slip" and (self.settings.scan_jitter == "on" or (
                self.settings.scan_jitter == "auto" and scan_rows))
            parts.append(self._fit_batch(w[sl], start[sl], cancel, rows))
            progress(min(n, s + bs), n, "windows fitted")
        merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        result = self._result(merged, start, good)
        result.seconds = time.perf_counter() - t0
        return result

    # --- one batch --------------------------------------------------------------------------
    def _fit_batch(self, windows: np.ndarray, start: np.ndarray, cancel: CancelToken,
                   rows: bool = False) -> dict:
        r = self.renderer
        lay = r.layout
        B = len(windows)
        data = torch.as_tensor(windows, dtype=r.dtype, device=r.device)
        theta = r.initialise(data, r.default_theta(start))
        data = data.reshape(B, -1)
        beta = self._linear_start(data, theta)
        rows = rows and self.settings.optimizer == "lm"
        poisson = self.settings.noise == "poisson"

        def measured(model):  # the noise model and its weights 1 / var
            noise = estimate_noise((data - model).reshape(B, *r.shape),
                                   model.reshape(B, *r.shape), r.sampling_A,
                                   r.optics.probe_bandlimit_inv_A, poisson)
            return noise, (1.0 / noise["var"]).reshape(B, -1).to(r.dtype)

        # the noise is measured beyond the probe's band limit, where the model has no power, so
        # the starting model serves (its misfit lies inside the band): the fit is weighted from
        # its first step; it is measured again on the final residual
        noise, weights = measured(r.model_and_jacobian(theta, beta, jacobian=False)[0])
        if self.settings.optimizer == "adam":
            theta, beta, it1 = self._adam(data, theta, beta, weights, cancel)
            model, Jt, _ = r.model_and_jacobian(theta, beta)
            converged = torch.ones(B, dtype=torch.bool)
        else:
            theta, beta, state, it1 = self._lm(data, theta, beta, weights,
                                               self.settings.max_iterations, cancel)
            model, Jt, _, converged = state[:4]
        noise, weights = measured(model)
        it2 = torch.zeros(B, dtype=torch.int64)
        jittered = torch.zeros(B, dtype=torch.bool)
        if rows:
            jittered = self._line_jitter(data - model, Jt, theta, weights)
            if self.settings.scan_jitter == "on":
                jittered[:] = True
        jit = torch.zeros(B, dtype=torch.float64)
        resid = data - model
        n_free = int(self.free.sum())
        chi2 = ((resid.to(torch.float64) ** 2) * weights.to(torch.float64)).sum(dim=1) / (
            data.shape[1] - n_free)
        cov, cov_l = laplace_covariance(Jt, weights, resid, r.shape, self.free,
                                        self.settings.covariance, self.settings.lag_window_px)
        if bool(jittered.any()):
            # the jittered windows again, with a shift per row; a common shift of the rows is
            # the origin's x and a trend the shear E_xy, so those two are held (the shifts
            # carry them) and nothing is left degenerate
            j = torch.nonzero(jittered).ravel()
            free = self.free.clone()
            free[lay.origin.start] = False
            free[lay.strain.start + 1] = False
            shifts = torch.zeros(len(j), r.shape[0], dtype=torch.float64, device=r.device)
            prior = torch.full((len(j),), 1.0 / self.settings.jitter_prior_A**2,
                               dtype=torch.float64)
            th_j, be_j, st, it_j = self._lm(data[j], theta[j], beta[j], weights[j], max(
                4, self.settings.max_iterations // 2), cancel, None, shifts, prior, free)
            m_j, J_j, _, conv_j, dx_j, sh_j = st
            # before the shifts the residual held the jitter's line-to-line steps, which reach
            # beyond the band limit along y: measure the noise again
            noise_j = estimate_noise((data[j] - m_j).reshape(len(j), *r.shape),
                                     m_j.reshape(len(j), *r.shape), r.sampling_A,
                                     r.optics.probe_bandlimit_inv_A, poisson)
            w_j = (1.0 / noise_j["var"]).reshape(len(j), -1).to(r.dtype)
            res_j = data[j] - m_j
            c_j, cl_j = laplace_covariance(J_j, w_j, res_j, r.shape, free,
                                           self.settings.covariance, self.settings.lag_window_px,
                                           (dx_j, prior))
            theta[j], beta[j], model[j] = th_j, be_j, m_j
            cov[j], cov_l[j], it2[j], converged[j] = c_j, cl_j, it_j, conv_j
            noise["dose"][j] = noise_j["dose"]
            chi2[j] = ((res_j.to(torch.float64) ** 2) * w_j.to(torch.float64)).sum(dim=1) / (
                data.shape[1] - int(free.sum()) - r.shape[0])
            jit[j] = sh_j.std(dim=1)
        ncc = _ncc(data, model)
        return {"theta": theta.cpu().numpy(), "beta": beta.cpu().numpy(),
                "row_jitter": jit.cpu().numpy(),
                "cov": cov.cpu().numpy(), "cov_l": cov_l.cpu().numpy(),
                "chi2": chi2.cpu().numpy(), "ncc": ncc.cpu().numpy(),
                "dose": noise["dose"].cpu().numpy(),
                "iterations": (it1 + it2).cpu().numpy(),
                "converged": converged.cpu().numpy()}

    def _line_jitter(self, resid, Jt, theta, weights) -> torch.Tensor:
        """(B,) bool: windows whose residual holds scan-line jitter. One Gauss–Newton step in
        row i's x shift alone lowers χ² by ``g_i² / D_i``, for noise a χ² with one degree
        (median 0.455). Jitter lifts every row; a vacancy or a contamination spot lifts the few
        rows through it, and misfit of other kinds lifts every projection, so the statistic is
        the median over rows divided by the reduced χ²; the threshold is 5 standard errors of
        the null median above it (0.93 for 128 rows; measured: 0.3 px jitter gives 3-4 at
        20 counts/px, vacancies and atom jitter stay below)."""
        r = self.renderer
        lay = r.layout
        ny, nx = r.shape
        B = len(theta)
        E = theta[:, lay.strain].reshape(B, 2, 2).to(r.dtype)
        o = lay.origin.start
        # d model / d x from the origin rows of the Jacobian: -slope Q_k, and u = F r - o
        dx = -(Jt[:, o] * (1.0 + E[:, 0, 0, None]) + Jt[:, o + 1] * E[:, 1, 0, None])
        wd = (weights * dx).reshape(B, ny, nx)
        g = (wd * resid.reshape(B, ny, nx)).sum(dim=2).to(torch.float64)
        D = (wd * dx.reshape(B, ny, nx)).sum(dim=2).to(torch.float64).clamp_min(1e-300)
        per_row = (g**2 / D).median(dim=1).values
        chi2 = ((resid.to(torch.float64) ** 2) * weights).sum(dim=1) / (resid.shape[1]
                                                                        - lay.n_params)
        # chi-square(1): median 0.4549, density there 0.4723; the median of n has standard
        # error 1 / (2 f sqrt(n))
        threshold = 0.4549 + 5.0 / (2.0 * 0.4723 * math.sqrt(ny))
        return per_row / chi2.clamp_min(1e-12) > threshold

    def _linear_start(self, data: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """Intensity scale and background by least squares at fixed nonlinear parameters."""
        r = self.renderer
        X = self._linear_design(r.lattice_image(theta).reshape(len(theta), -1))
        sol = torch.linalg.lstsq(X.transpose(1, 2), data.to(torch.float64)[..., None]).solution
        return sol[..., 0]

    def _linear_design(self, lattice: torch.Tensor) -> torch.Tensor:
        """(B, n_beta, N) columns of the linear parameters: L, L², …, the background."""
        r = self.renderer
        lat = lattice.to(torch.float64)
        poly = r.poly.reshape(len(r.poly), -1).to(torch.float64)
        powers = [lat[:, None] ** k for k in range(1, r.layout.n_response + 1)]
        return torch.cat(powers + [poly[None].expand(len(lat), -1, -1)], dim=1)

    def _lm(self, data, theta, beta, weights, max_iter, cancel, state=None, shifts=None,
            prior=None, free=None):
        """Levenberg–Marquardt over the free parameters of every window of a batch.

        With ``shifts`` (B, ny) Å the rows' x shifts (scan jitter) are fitted too, under a
        Gaussian prior of width ``settings.jitter_prior_A`` (it also fixes their gauge: a common
        shift is the origin, a trend the shear); each shift touches one row only, so they are
        eliminated from the normal equations by a Schur complement (their block is diagonal).
        ``prior`` (B,) is each window's prior precision of its shifts (1/Å²; a huge one holds
        a window's rows in place).

        Returns theta, beta, state = (model, Jt, lattice, converged, dx, shifts) at the optimum
        (dx: d model / d x, None without shifts) and the iterations per window."""
        r = self.renderer
        lay = r.layout
        B = len(theta)
        ny, nx = r.shape
        free = self.free if free is None else free
        free_idx = torch.nonzero(free).ravel()
        rows = shifts is not None
        if rows and prior is None:
            prior = torch.full((B,), 1.0 / self.settings.jitter_prior_A**2, dtype=torch.float64)
        if state is None or rows:
            out = r.model_and_jacobian(theta, beta, row_shifts=shifts)
            model, Jt, lattice = out[:3]
            dx = out[3] if rows else None
        else:
            model, Jt, lattice = state[:3]
            dx = None
        cost = ((data - model).to(torch.float64) ** 2 * weights).sum(dim=1)
        if rows:
            cost = cost + prior * (shifts**2).sum(dim=1)
        lam = torch.full((B,), 1e-3, dtype=torch.float64)
        model, Jt, lattice = model.clone(), Jt.clone(), lattice.clone()  # updated in place
        active = torch.ones(B, dtype=torch.bool)
        converged = torch.zeros(B, dtype=torch.bool)
        iters = torch.zeros(B, dtype=torch.int64)
        eye = torch.eye(len(free_idx), dtype=torch.float64)
        all_free = bool(free.all())
        for _ in range(max_iter):
            cancel.check()
            idx = torch.nonzero(active).ravel()
            if len(idx) == 0:
                break
            iters[idx] += 1
            every = len(idx) == B  # no gathering copies while the whole batch is active
            J = Jt if every else Jt[idx]
            if not all_free:
                J = J[:, free_idx]
            w = weights if every else weights[idx]
            res = (data - model) if every else (data[idx] - model[idx])
            JW = J * w[:, None]
            H = torch.bmm(JW, J.transpose(1, 2)).to(torch.float64)
            g = torch.bmm(JW, res[:, :, None]).to(torch.float64)[..., 0]
            del JW
            diag = torch.diagonal(H, dim1=1, dim2=2).clamp_min(1e-30)
            lam_i = lam[idx]
            A = H + (lam_i[:, None] * diag)[:, :, None] * eye
            if rows:
                d_i = dx if every else dx[idx]
                sh_i = shifts[idx]
                pr_i = prior[idx, None]
                wd = (w * d_i).reshape(-1, ny, nx)
                Dd = ((wd * d_i.reshape(-1, ny, nx)).sum(dim=2).to(torch.float64) + pr_i)
                Dd = Dd * (1.0 + lam_i[:, None])  # damped like the other parameters
                C = torch.einsum("bpij,bij->bpi", J.reshape(len(idx), -1, ny, nx),
                                 wd).to(torch.float64)  # (b, p, ny)
                gd = (wd * res.reshape(-1, ny, nx)).sum(dim=2).to(torch.float64) \
                    - pr_i * sh_i
                A = A - torch.bmm(C / Dd[:, None], C.transpose(1, 2))
                g = g - (C * (gd / Dd)[:, None]).sum(dim=2)
            # scaled solve (unit diagonal): the parameters' units differ by orders of magnitude
            sc = torch.sqrt(torch.diagonal(A, dim1=1, dim2=2).clamp_min(1e-30))
            An = A / (sc[:, :, None] * sc[:, None, :])
            step = torch.linalg.solve(An, (g / sc)[..., None])[..., 0] / sc
            full = torch.zeros(len(idx), lay.n_params, dtype=torch.float64)
            full[:, free_idx] = step
            th_t = theta[idx] + full[:, :lay.n_theta]
            be_t = beta[idx] + full[:, lay.n_theta:]
            if rows:
                sh_t = sh_i + (gd - torch.einsum("bpi,bp->bi", C, step)) / Dd
                m_t, J_t, l_t, dx_t = r.model_and_jacobian(th_t, be_t, row_shifts=sh_t)
            else:
                m_t, J_t, l_t = r.model_and_jacobian(th_t, be_t)
            d_data = data if every else data[idx]
            cost_t = ((d_data - m_t).to(torch.float64) ** 2 * w).sum(dim=1)
            if rows:
                cost_t = cost_t + pr_i[:, 0] * (sh_t**2).sum(dim=1)
            accept = cost_t < cost[idx]
            gain = (cost[idx] - cost_t) / cost[idx].clamp_min(1e-300)
            acc = idx[accept]
            theta[acc], beta[acc], cost[acc] = th_t[accept], be_t[accept], cost_t[accept]
            if bool(accept.all()) and every:
                model, Jt, lattice = m_t, J_t, l_t
                if rows:
                    dx, shifts = dx_t, sh_t
            else:
                model[acc], Jt[acc], lattice[acc] = m_t[accept], J_t[accept], l_t[accept]
                if rows:
                    dx[acc], shifts[acc] = dx_t[accept], sh_t[accept]
            del J_t
            lam[idx] = torch.where(accept, lam_i / 3.0, lam_i * 4.0).clamp(1e-9, 1e9)
            # a proposed step far below any σ reachable here ends a window's fit, taken or
            # not (at the optimum float32 rounding makes tiny steps fail to lower the cost):
            # 1e-4 Å in slips and origin, 1e-5 in the affine map
            small = ((full[:, :lay.origin.stop].abs().max(dim=1).values < 1e-4)
                     & (full[:, lay.strain].abs().max(dim=1).values < 1e-5))
            done = small | (accept & (gain < 1e-7)) | (lam[idx] >= 1e9)
            converged[idx[done]] = True
            active[idx[done]] = False
        return theta, beta, (model, Jt, lattice, converged, dx, shifts), iters

    def _adam(self, data, theta, beta, weights, cancel, steps=None):
        """Reference optimiser: Adam on the weighted squared residual, gradients by autograd
        through :meth:`SlipRenderer.render`; the linear parameters are solved exactly at each
        step (their optimum is differentiable-free: the gradient in theta at the optimal beta
        is the gradient of the minimum)."""
        r = self.renderer
        lay = r.layout
        steps = steps or self.settings.adam_steps
        # natural step sizes of the nonlinear parameters (Å, Å, 1, Å², 1)
        scale = torch.ones(lay.n_theta, dtype=torch.float64)
        scale[lay.slip] = 0.01
        scale[lay.origin] = 0.01
        scale[lay.strain] = 1e-3
        scale[lay.blur] = 2e-3
        scale[lay.light] = 0.01
        if hasattr(lay, "origin_b"):
            scale[lay.origin_b] = 0.01
        mask = self.free[:lay.n_theta].to(torch.float64)
        u = torch.zeros_like(theta, requires_grad=True)
        base = theta.detach().clone()
        opt = torch.optim.Adam([u], lr=0.3)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
        w64 = weights.to(torch.float64)
        d64 = data.to(torch.float64)
        B = len(theta)
        for k in range(steps):
            if k % 50 == 0:
                cancel.check()
            th = base + u * scale * mask
            lattice = r.lattice_image(th).reshape(B, -1).to(torch.float64)
            X = self._linear_design(lattice)
            with torch.no_grad():
                sw = torch.sqrt(w64)
                sol = torch.linalg.lstsq((X * sw[:, None]).transpose(1, 2),
                                         (d64 * sw)[..., None]).solution[..., 0]
            model = (sol[:, :, None] * X).sum(dim=1)
            loss = ((d64 - model) ** 2 * w64).sum() / w64.sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        with torch.no_grad():
            th = base + u * scale * mask
        return th.detach(), sol.detach(), torch.full((B,), steps, dtype=torch.int64)

    # --- results ---------------------------------------------------------------------------
    def _result(self, m: dict, start: np.ndarray, good: np.ndarray) -> FitResult:
        r = self.renderer
        lay = r.layout
        theta, beta, cov, cov_l = m["theta"], m["beta"], m["cov"], m["cov_l"]
        n = len(theta)
        sl = lay.slip
        raw = theta[:, sl]
        labels = np.asarray(self.space.canonical(raw))
        if self.task == "twist":
            maps = _twist_fold_sign(self.space, raw, labels)[:, None, None]
        else:
            maps = _fold_maps(self.space, raw, labels)  # (n, n_slip, n_slip)
        c_slip = cov[:, sl, sl]
        c_slip = maps @ c_slip @ maps.transpose(0, 2, 1)
        cl_slip = maps @ cov_l[:, sl, sl] @ maps.transpose(0, 2, 1)
        sigma = np.sqrt(np.clip(np.diagonal(c_slip, axis1=1, axis2=2), 0, None))
        sigma_l = np.sqrt(np.clip(np.diagonal(cl_slip, axis1=1, axis2=2), 0, None))
        U = self.space.material.unit_vectors
        var_cart = np.zeros(n)
        if self.task == "twist":
            var_cart = c_slip[:, 0, 0]  # σ_θ (degrees) stands for σ_D
        for t in range(self.layers - 1 if self.task == "slip" else 0):
            block = c_slip[:, 2 * t:2 * t + 2, 2 * t:2 * t + 2]
            var_cart += np.trace(U.T @ block @ U, axis1=1, axis2=2)
        sigma_D = np.sqrt(np.clip(var_cart, 0, None))
        moved = np.asarray(self.space.distance(labels, start)).reshape(n)
        names = lay.names()
        params = {name: np.concatenate([theta, beta], axis=1)[:, k]
                  for k, name in enumerate(names)}
        params["row_jitter_A"] = m["row_jitter"]
        params["source_fwhm_A"] = np.sqrt(np.clip(theta[:, lay.blur], 0, None)) / FWHM_TO_SIGMA
        for k in range(lay.n_slip):
            # the labels are reported folded; the raw ones go with the origin (model_images)
            params["raw_" + names[k]] = params.pop(names[k])
        bad = ~good
        for arr in (labels, sigma, sigma_l):
            arr[bad] = np.nan
        for arr in (sigma_D, moved, m["ncc"], m["chi2"], m["dose"]):
            arr[bad] = np.nan
        settings = {"optimizer": self.settings.optimizer, "covariance": self.settings.covariance,
                    "noise": self.settings.noise,
                    "background_degree": self.settings.background_degree,
                    "response_degree": self.settings.response_degree,
                    "free": [nm for nm, f in zip(names, self.free.tolist(), strict=True) if f]}
        return FitResult(self.names, labels, sigma, sigma_l, sigma_D, start, moved,
                         m["ncc"].astype(float), m["chi2"].astype(float),
                         m["dose"].astype(float), params, m["converged"] & good,
                         m["iterations"], covariance=c_slip, settings=settings,
                         unit="deg" if self.task == "twist" else "A")

    def model_images(self, result: FitResult, index) -> np.ndarray:
        """The fitted model of windows ``index`` (k, P, P) from a result's parameters (for the
        inspector: fitted image and residual beside the window)."""
        idx = np.atleast_1d(index)
        r = self.renderer
        lay = r.layout
        names = lay.names()
        theta = np.zeros((len(idx), lay.n_theta))
        beta = np.zeros((len(idx), lay.n_beta))
        for k, name in enumerate(names):
            col = result.params[("raw_" + name) if k < lay.n_slip else name][idx]
            if k < lay.n_theta:
                theta[:, k] = col
            else:
                beta[:, k - lay.n_theta] = col
        th = torch.as_tensor(theta)
        be = torch.as_tensor(beta)
        return r.render(th, be).detach().cpu().numpy()


def _ncc(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a = a.to(torch.float64)
    b = b.to(torch.float64)
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    return (a * b).sum(dim=1) / torch.sqrt((a * a).sum(dim=1) * (b * b).sum(dim=1)).clamp_min(
        1e-300)


def _twist_fold_sign(space, raw: np.ndarray, folded: np.ndarray) -> np.ndarray:
    """(n,) +1 where the canonical twist is the raw one plus a period, -1 where it is its
    mirror (θ ≡ −θ)."""
    period = space.period_deg
    d = (raw[:, 0] - folded[:, 0]) % period
    same = np.minimum(d, period - d) < 1e-9
    return np.where(same, 1.0, -1.0)


def _fold_maps(space, raw: np.ndarray, folded: np.ndarray) -> np.ndarray:
    """The linear part (n, k, k) of the symmetry operation that took each raw label to its
    canonical one (a layer order, up to lattice translations), to carry covariances along."""
    from stackview.core.labels import layer_orders

    n, k = raw.shape
    eye = np.eye(k)
    # the linear map of each layer order, applied to unit label vectors
    orders = [np.asarray(v).reshape(k, k).T for v in
              layer_orders(eye.reshape(k, -1, 2))] if space.layer_swap else [eye]
    lengths = np.tile(space.lengths_A, k // 2)
    best = np.zeros(n, dtype=int)
    best_err = np.full(n, np.inf)
    for j, T in enumerate(orders):
        moved = raw @ T.T
        frac = (moved - folded) / lengths
        err = np.abs(frac - np.round(frac)).max(axis=1)
        better = err < best_err - 1e-12
        best[better], best_err[better] = j, err[better]
    return np.stack(orders)[best]


def fit_windows(windows, start_labels, material, optics, sampling_A: float, task: str = "slip",
                layers: int = 2, settings: FitSettings | None = None, progress=null_progress,
                cancel: CancelToken | None = None) -> FitResult:
    """Fit windows (N, P, P) starting from labels (N, n) (see :class:`WindowFitter`)."""
    w = np.asarray(windows)
    shape = w.shape[-2:]
    fitter = WindowFitter(material, task, layers, optics, sampling_A, shape, settings)
    return fitter.fit(w, start_labels, progress, cancel)


def fit_window(window, start_labels, material, optics, sampling_A: float, task: str = "slip",
               layers: int = 2, settings: FitSettings | None = None) -> FitResult:
    """Fit one window (P, P) from one starting reading; a :class:`FitResult` of length 1."""
    return fit_windows(np.asarray(window)[None], np.asarray(start_labels, dtype=float)[None],
                       material, optics, sampling_A, task, layers, settings)
