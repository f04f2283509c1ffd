"""Differentiable torch renderer of a twisted-bilayer window: two lattice Fourier series.

A twisted bilayer is not periodic with one cell, but each of its layers is, and incoherent ADF
imaging adds them: the window is the sum of two series of :mod:`stackview.fit.renderer`'s kind,
layer A with its reflections turned by the window's orientation ``phi`` and layer B by
``phi + theta``, each at its own translation (A's is the stack's position, B's the moiré's)

    J(r) = sum_{X = A, B} sum_G c_G exp(2 pi i G_X . (F r - o_X)),   G_X = R(phi_X) G,

with the probe, blur, cross-sections and the affine map F of :class:`SlipRenderer`. The twist
derivative needs no extra products: d/dtheta turns B's reflections, ``R' G = J G``, so it is
B's origin-type images times ``(F r - o_B)`` (see :meth:`TwistRenderer.model_and_jacobian`).

``phi`` is held during the fit (the affine map's rotation refines it); :meth:`initialise`
finds it and both translations: the window's power at each layer's reflections over a grid of
orientations, the two layers 60° apart in the power (a 3-fold layer's power is 6-fold) tried
on both branches, each layer's translation by correlation, and the best of the candidates by
the joint correlation. No Qt here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from stackview.fit.renderer import TWO_PI, LinearTail, SlipRenderer

DEG = math.pi / 180.0


@dataclass(frozen=True)
class TwistLayout(LinearTail):
    """Parameter positions for twisted bilayers (the names :class:`ParameterLayout` uses).

    ``theta``: twist θ (deg), the held orientation φ (deg), layer A's translation (2, Å), layer
    B's (2, Å), E (4), blur variance (Å²), light-atom factor; ``beta`` as for slips."""

    n_poly: int
    n_response: int = 1
    n_slip: int = 1  # the labels: θ

    slip = slice(0, 1)
    orientation = 1
    origin = slice(2, 4)
    origin_b = slice(4, 6)
    strain = slice(6, 10)
    blur = 10
    light = 11
    n_theta = 12

    def names(self) -> list[str]:
        return (["theta_deg", "orientation_deg", "origin_x_A", "origin_y_A", "top_x_A",
                 "top_y_A", "Exx", "Exy", "Eyx", "Eyy", "blur_var_A2", "light_weight"]
                + self.beta_names())


class TwistRenderer(SlipRenderer):
    """Renders windows of a twisted bilayer (see the module docstring); the constructor's
    arguments are :class:`SlipRenderer`'s without ``layers``."""

    def __init__(self, material, optics, sampling_A: float, shape, background_degree: int = 2,
                 parametrization: str = "kirkland", dtype=torch.float32, device="cpu",
                 transfer_floor: float = 1e-3, response_degree: int = 1) -> None:
        super().__init__(material, 2, optics, sampling_A, shape, background_degree,
                         parametrization, dtype, device, transfer_floor, response_degree)
        self.layout = TwistLayout(n_poly=self.layout.n_poly, n_response=response_degree)
        self.mean_intensity /= 1.0  # two layers, as for the slip bilayer

    # --- parameters ---------------------------------------------------------------------------
    def default_theta(self, thetas_deg, origin_A=None) -> torch.Tensor:
        t = torch.as_tensor(np.asarray(thetas_deg, dtype=float), dtype=torch.float64,
                            device=self.device).reshape(-1)
        lay = self.layout
        theta = torch.zeros(len(t), lay.n_theta, dtype=torch.float64, device=self.device)
        theta[:, 0] = t
        if origin_A is not None:
            theta[:, lay.origin] = torch.as_tensor(np.asarray(origin_A, dtype=float),
                                                   dtype=torch.float64).reshape(-1, 2)
        theta[:, lay.blur] = self.start_blur_var_A2
        theta[:, lay.light] = 1.0
        return theta

    def _rotated(self, angle_deg: torch.Tensor) -> torch.Tensor:
        """The material's reflections turned by per-window angles: (B, n_G, 2)."""
        a = angle_deg * DEG
        c, s = torch.cos(a)[:, None], torch.sin(a)[:, None]
        gx, gy = self._G[None, :, 0], self._G[None, :, 1]
        return torch.stack([c * gx - s * gy, s * gx + c * gy], dim=2)

    def _layers(self, theta: torch.Tensor):
        """Per layer: reflections (B, n_G, 2), coefficients (B, n_G) and the envelope-motif
        part without the translation's phase (for the light-atom derivative)."""
        lay = self.layout
        env = self._transfer * torch.exp(-2.0 * math.pi**2 * theta[:, lay.blur:lay.blur + 1]
                                         * self._g2)
        motif = self._f_heavy + theta[:, lay.light:lay.light + 1] * self._f_light
        out = []
        for angle, org in ((theta[:, lay.orientation], theta[:, lay.origin]),
                           (theta[:, lay.orientation] + theta[:, 0], theta[:, lay.origin_b])):
            G = self._rotated(angle)
            phase = torch.exp(-1j * TWO_PI * torch.einsum("bgk,bk->bg", G, org))
            out.append((G, env * motif * phase, env * self._f_light * phase))
        return out

    def coefficients(self, theta: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("a twisted bilayer has one coefficient set per layer")

    def lattice_image(self, theta, row_shifts=None) -> torch.Tensor:
        """The stack's image (B, ny, nx): both layers' series."""
        img = 0.0
        for G, c, _ in self._layers(theta):
            img = img + self._synthesize(c[:, None], self._factors(theta, None, G))[:, :, 0]
        return img

    def model_and_jacobian(self, theta: torch.Tensor, beta: torch.Tensor, jacobian: bool = True,
                           row_shifts=None):
        """As :meth:`SlipRenderer.model_and_jacobian` (no row shifts for twist)."""
        if row_shifts is not None:
            raise ValueError("the twist renderer does not fit row shifts")
        lay = self.layout
        B = theta.shape[0]
        ny, nx = self.shape
        N = ny * nx
        nr = lay.n_response
        coef = beta.to(self.dtype)
        background = coef[:, nr:] @ self.poly.reshape(-1, N)
        layers = self._layers(theta)
        if not jacobian:
            lattice = self.lattice_image(theta).reshape(B, N)
            return self._response(coef, lattice)[0] + background, None, lattice
        imgs = []
        for G, c, c_light in layers:
            sets = [c, c * G[..., 0] * (1j * TWO_PI), c * G[..., 1] * (1j * TWO_PI),
                    c * (-2.0 * math.pi**2) * self._g2, c_light]
            imgs.append(self._synthesize(torch.stack(sets, dim=1),
                                         self._factors(theta, None, G)))  # (B, ny, 5, nx)
        (la, qax, qay, va, wa), (lb, qbx, qby, vb, wb) = (
            [im[:, :, k] for k in range(5)] for im in imgs)
        lattice = (la + lb).reshape(B, N)
        value, slope = self._response(coef, lattice)
        a = slope.reshape(B, ny, nx)
        E = theta[:, lay.strain].reshape(B, 2, 2).to(self.dtype)
        x = self._x.to(self.dtype)[None, None, :]
        y = self._y.to(self.dtype)[None, :, None]
        # (F r - o_B) per pixel, for the twist derivative
        ob = theta[:, lay.origin_b].to(self.dtype)
        ux = (1 + E[:, 0, 0, None, None]) * x + E[:, 0, 1, None, None] * y - ob[:, 0, None, None]
        uy = E[:, 1, 0, None, None] * x + (1 + E[:, 1, 1, None, None]) * y - ob[:, 1, None, None]
        Jt = torch.zeros(B, lay.n_params, ny, nx, dtype=self.dtype, device=self.device)
        Jt[:, 0] = a * DEG * (uy * qbx - ux * qby)
        o, ob_ = lay.origin.start, lay.origin_b.start
        Jt[:, o], Jt[:, o + 1] = -a * qax, -a * qay
        Jt[:, ob_], Jt[:, ob_ + 1] = -a * qbx, -a * qby
        qx, qy = qax + qbx, qay + qby
        e = lay.strain.start
        Jt[:, e], Jt[:, e + 1] = a * qx * x, a * qx * y
        Jt[:, e + 2], Jt[:, e + 3] = a * qy * x, a * qy * y
        Jt[:, lay.blur] = a * (va + vb)
        Jt[:, lay.light] = a * (wa + wb)
        Jt = Jt.reshape(B, lay.n_params, N)
        for k in range(1, nr + 1):
            Jt[:, lay.n_theta + k - 1] = lattice**k
        Jt[:, lay.n_theta + nr:] = self.poly.reshape(1, -1, N)
        return value + background, Jt, lattice

    def _response(self, coef, lat):
        nr = self.layout.n_response
        value = coef[:, :1] * lat
        slope = coef[:, :1].expand_as(lat)
        for k in range(2, nr + 1):
            value = value + coef[:, k - 1:k] * lat**k
            slope = slope + k * coef[:, k - 1:k] * lat ** (k - 1)
        return value, slope

    def render(self, theta, beta, row_shifts=None) -> torch.Tensor:
        if row_shifts is not None:
            raise ValueError("the twist renderer does not fit row shifts")
        lattice = self.lattice_image(theta)
        nr = self.layout.n_response
        coef = beta.to(lattice.dtype)
        bg = torch.einsum("bm,mij->bij", coef[:, nr:], self.poly)
        return sum(coef[:, k - 1, None, None] * lattice**k for k in range(1, nr + 1)) + bg

    # --- the start ------------------------------------------------------------------------
    def _projection(self, w: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
        """sum_ij w_ij exp(-2 pi i G.r_ij) for per-window reflections G (B, n_G, 2)."""
        ex = torch.exp(-1j * TWO_PI * G[..., 0:1] * self._x[None, None, :])  # (B, n_G, nx)
        ey = torch.exp(-1j * TWO_PI * G[..., 1:2] * self._y[None, None, :])
        tmp = torch.einsum("bij,bgj->bgi", w.to(torch.complex128), ex)
        return (tmp * ey).sum(dim=2)

    def _best_translation(self, d: torch.Tensor, c0: torch.Tensor, angle: torch.Tensor,
                          grid: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
        """Translation (B, 2) of one layer (reflections at ``angle``) that best correlates its
        coefficients ``c0`` (at no translation) with the window's components ``d``, and the
        correlation."""
        u = torch.arange(grid, dtype=torch.float64) / grid
        uu, vv = torch.meshgrid(u, u, indexing="ij")
        frac = torch.stack([uu.ravel(), vv.ravel()], dim=1)
        hk = torch.as_tensor(self.hk, dtype=torch.float64)
        phases = torch.exp(-1j * TWO_PI * (frac @ hk.T))  # G.o for o = frac in the layer's cell
        score = ((c0 * d.conj()) @ phases.T).real
        best = score.argmax(dim=1)
        cell = torch.as_tensor(self.material.cell_2d, dtype=torch.float64)
        a = angle * DEG
        rot = torch.stack([torch.stack([torch.cos(a), -torch.sin(a)], -1),
                           torch.stack([torch.sin(a), torch.cos(a)], -1)], -2)  # (B, 2, 2)
        o = torch.einsum("bkl,bl->bk", rot, frac[best] @ cell)
        return o, score.max(dim=1).values

    def _power(self, w: torch.Tensor) -> tuple[torch.Tensor, float, float]:
        """|FFT|² of the tapered windows, zero-padded twice (B, 2ny, 2nx), and its bin sizes."""
        ny, nx = self.shape
        han = torch.outer(torch.hann_window(ny, periodic=False, dtype=torch.float64),
                          torch.hann_window(nx, periodic=False, dtype=torch.float64))
        spec = torch.fft.fft2(w * han, s=(2 * ny, 2 * nx))
        return spec.real**2 + spec.imag**2, 2 * ny * self.sampling_A, 2 * nx * self.sampling_A

    @staticmethod
    def _sample(power: torch.Tensor, ky: torch.Tensor, kx: torch.Tensor) -> torch.Tensor:
        """Bilinear samples of a periodic spectrum (B, My, Mx) at fractional bins (B, K)."""
        B, My, Mx = power.shape
        y0, x0 = torch.floor(ky), torch.floor(kx)
        fy, fx = ky - y0, kx - x0
        y0, x0 = y0.long() % My, x0.long() % Mx
        y1, x1 = (y0 + 1) % My, (x0 + 1) % Mx
        flat = power.reshape(B, -1)

        def at(yy, xx):
            return flat.gather(1, yy * Mx + xx)

        return ((1 - fy) * (1 - fx) * at(y0, x0) + (1 - fy) * fx * at(y0, x1)
                + fy * (1 - fx) * at(y1, x0) + fy * fx * at(y1, x1))

    def initialise(self, windows: torch.Tensor, theta: torch.Tensor, step_deg: float = 0.25
                   ) -> torch.Tensor:
        """Orientation, twist branch and both translations (see the module docstring)."""
        lay = self.layout
        theta = theta.clone()
        B = len(theta)
        w = windows.to(torch.float64)
        w = w - w.mean(dim=(1, 2), keepdim=True)
        t0 = theta[:, 0].clone()
        # the power at one layer's reflections over orientations in [0, 60) (a layer's power is
        # 6-fold), weighted by the reflections' expected strength
        power, ly, lx = self._power(w)
        angles = torch.arange(0.0, 60.0, step_deg, dtype=torch.float64)
        strength = (self._transfer * (self._f_heavy + self._f_light).abs()) ** 2
        G = self._rotated(angles)  # (n_angles, n_G, 2)
        ky = (G[..., 1] * ly).reshape(1, -1).expand(B, -1)
        kx = (G[..., 0] * lx).reshape(1, -1).expand(B, -1)
        at = self._sample(power, ky, kx).reshape(B, len(angles), -1)
        per_angle = (at * strength).sum(dim=2)  # (B, n_angles)
        # the orientation whose partner theta away (modulo 60) has the most power with it
        n = len(angles)
        shift = torch.round((t0 % 60.0) / step_deg).long()
        partner = per_angle.gather(1, (torch.arange(n)[None, :] + shift[:, None]) % n)
        phi = angles[(per_angle + partner).argmax(dim=1)]
        # each layer's orientation is known modulo 60°: both branches of each are tried, each
        # layer placed by its own correlation; of the four pairs the one whose image (with its
        # best scale and offset) leaves the smallest residual wins. Judging the pairs jointly
        # matters at small twists, where the layers' reflections overlap and one layer's
        # correlation also sees the other
        zero = theta.clone()
        zero[:, lay.origin] = 0.0
        zero[:, lay.origin_b] = 0.0
        slots = {}
        for layer, base in (("a", phi), ("b", phi + t0)):
            for off in (0.0, 60.0):
                cand = zero.clone()
                cand[:, lay.orientation] = base + off
                cand[:, 0] = 0.0  # layer A's series at this orientation stands for either
                (Gx, cx, _), _ = self._layers(cand)
                o, _ = self._best_translation(self._projection(w, Gx), cx, base + off)
                slots[layer, off] = (base + off, o)
        flat = w.reshape(B, -1)
        best_cost = torch.full((B,), math.inf, dtype=torch.float64)
        for a_off in (0.0, 60.0):
            for b_off in (0.0, 60.0):
                (ang_a, o_a), (ang_b, o_b) = slots["a", a_off], slots["b", b_off]
                cand = theta.clone()
                cand[:, lay.orientation], cand[:, 0] = ang_a, ang_b - ang_a
                cand[:, lay.origin], cand[:, lay.origin_b] = o_a, o_b
                img = self.lattice_image(cand).reshape(B, -1).to(torch.float64)
                img = img - img.mean(dim=1, keepdim=True)
                scale = (img * flat).sum(dim=1) / (img * img).sum(dim=1).clamp_min(1e-300)
                cost = ((flat - scale[:, None] * img) ** 2).sum(dim=1)
                better = cost < best_cost
                theta[better], best_cost[better] = cand[better], cost[better]
        return theta
