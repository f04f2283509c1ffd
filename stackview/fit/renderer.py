"""Differentiable torch renderer of a slip-stacked window: the incoherent model as a Fourier series.

The incoherent image of :mod:`stackview.simulation.incoherent` is ``J = sum_j sigma_j P(r - r_j)``
(ADF cross-sections of :mod:`stackview.simulation.cross_sections`, probe intensity of
:mod:`stackview.simulation.probe` with the Gaussian source blur). A slip-stacked multilayer is
periodic with the monolayer's cell, so by Poisson summation its image is exactly the lattice
Fourier series

    J(u) = sum_G c_G exp(2 pi i G.u),
    c_G  = T(|G|) exp(-2 pi^2 v |G|^2) / A_cell
           * sum_layers sum_basis sigma_j exp(-2 pi i G.(p_j + s_l)),

with ``T`` the Fourier transform of the probe intensity (its band limit 2 alpha / lambda ends the
series), ``v`` the variance of the Gaussian blur (Å², the optics' source size to start with) and
``s_l`` the layer offsets {0, D1, D1 + D2}. It is the same model as the grid simulator, without
its grid: no spreading, no padding, no edges, and the atoms beyond the probe tail that the grid
simulator drops (a ~1 % smooth background) are included. The tests check it against
:func:`stackview.simulation.simulate` on stacks from :func:`stackview.materials.build_stack`.

A window (pixel (i, j) at ``r = ((j - (P - 1)/2) s, (i - (P - 1)/2) s)`` Å from its centre, rows
along +y as in :mod:`stackview.simulation.grid`) shows ``J(F r - o)``: ``o`` translates the
stack (the builders' ``origin_A``, measured from the window centre) and ``F = 1 + E`` is a local
affine map of the whole image — a calibration error or scan distortion scales and shears lattice
and probe alike. The model adds an intensity scale ``alpha`` and a polynomial background.

Since ``J(F r - o) = sum_G c_G exp(-2 pi i G.o) exp(2 pi i (F^T G).r)`` separates into x and y
factors, one window is a real matrix product ``(P x 2 n_G) @ (2 n_G x P)``, and every derivative
the fit needs is another set of coefficients on the same factors (the derivatives with respect
to ``E`` are pixel coordinates times the origin derivative), so a Jacobian costs a few products
(:meth:`SlipRenderer.model_and_jacobian`); :meth:`SlipRenderer.render` is the same image
written plainly for torch autograd (the tests compare the two).

No Qt here.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from stackview.errors import UsageError
from stackview.materials import get_material
from stackview.simulation.cross_sections import adf_cross_sections
from stackview.simulation.optics import Optics
from stackview.simulation.probe import probe_wave_fourier

TWO_PI = 2.0 * math.pi
#: sigma of a Gaussian from its full width at half maximum
FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


@functools.lru_cache(maxsize=16)
def _probe_profile(optics: Optics) -> tuple[np.ndarray, np.ndarray]:
    """The probe intensity projected onto x (its line spread), on a fine centred grid: (x_A, w).

    The intensity comes from :func:`probe_wave_fourier`, the simulator's probe; its Fourier
    transform at any |k| is then an exact 1-D sum (the probe has only defocus and Cs, so it is
    round and its 2-D transform depends on |k| alone)."""
    # half the intensity's Nyquist step resolves it; 64 Å (plus the defocus spread) hold its
    # tail (the transfer changes by < 1e-4 when the box doubles)
    step = 0.5 * optics.nyquist_sampling_A
    extent = 64.0 + 8.0 * abs(optics.defocus_A) * optics.convergence_mrad * 1e-3
    n = int(2 ** math.ceil(math.log2(extent / step)))
    psi = probe_wave_fourier(optics, (n, n), step)
    intensity = np.abs(np.fft.ifft2(psi)) ** 2
    profile = np.fft.fftshift(intensity.sum(axis=0))
    profile /= profile.sum()
    x = (np.arange(n) - n // 2) * step
    return x, profile


def probe_transfer(optics: Optics, k_inv_A: np.ndarray) -> np.ndarray:
    """Fourier transform of the probe intensity (no source blur) at spatial frequencies |k| (1/Å);
    1 at k = 0, 0 beyond the band limit 2 alpha / lambda."""
    x, w = _probe_profile(optics)
    k = np.asarray(k_inv_A, dtype=float)
    out = np.cos(TWO_PI * k.reshape(-1, 1) * x[None, :]) @ w
    out = out.reshape(k.shape)
    return np.where(k <= optics.probe_bandlimit_inv_A, out, 0.0)


class LinearTail:
    """The linear parameters ``beta`` every layout ends with: the detector response's
    coefficients, then the background polynomial's."""

    @property
    def n_beta(self) -> int:
        return self.n_response + self.n_poly

    @property
    def n_params(self) -> int:
        return self.n_theta + self.n_beta

    def beta_names(self) -> list[str]:
        return (["scale"] + [f"response{k}" for k in range(2, self.n_response + 1)]
                + [f"bg{k}" for k in range(self.n_poly)])


@dataclass(frozen=True)
class ParameterLayout(LinearTail):
    """Where each parameter sits in the fit's vectors (nonlinear ``theta``, then linear ``beta``).

    ``theta``: slips (Da, Db[, Dc, Dd]) Å, origin (x, y) Å, E = F - 1 (xx, xy, yx, yy), the blur
    variance ``v`` (Å²) and the light atoms' cross-section factor ``w``; ``beta``: the detector
    response's coefficients (``alpha`` times the lattice image, then its square, …) and the
    background polynomial's coefficients."""

    n_slip: int
    n_poly: int
    n_response: int = 1

    @property
    def slip(self) -> slice:
        return slice(0, self.n_slip)

    @property
    def origin(self) -> slice:
        return slice(self.n_slip, self.n_slip + 2)

    @property
    def strain(self) -> slice:
        return slice(self.n_slip + 2, self.n_slip + 6)

    @property
    def blur(self) -> int:
        return self.n_slip + 6

    @property
    def light(self) -> int:
        return self.n_slip + 7

    @property
    def n_theta(self) -> int:
        return self.n_slip + 8

    def names(self) -> list[str]:
        slips = ["Da_A", "Db_A", "Dc_A", "Dd_A"][: self.n_slip]
        return (slips + ["origin_x_A", "origin_y_A", "Exx", "Exy", "Eyx", "Eyy", "blur_var_A2",
                         "light_weight"] + self.beta_names())


def polynomial_terms(degree: int) -> list[tuple[int, int]]:
    """Exponents (px, py) of the background polynomial's monomials up to ``degree``."""
    return [(i - j, j) for i in range(degree + 1) for j in range(i + 1)]


class SlipRenderer:
    """Renders windows of a slip-stacked multilayer of one material under one set of optics.

    Parameters
    ----------
    material
        Material or its name.
    layers
        2 (bilayer) or 3 (trilayer).
    optics
        The imaging conditions (the model card's); defocus and Cs shape the probe, its source
        size is the starting blur.
    sampling_A
        Window pixel size (Å).
    shape
        Window shape (ny, nx).
    background_degree
        Degree of the background polynomial (0: a constant offset).
    response_degree
        Degree of the detector response: the window is ``alpha1 L + alpha2 L² + …`` of the
        stack's image ``L`` (plus the background). 1 is the linear incoherent model; 2 (the
        fit's default) absorbs a contrast non-linearity (a detector's or a display's gamma),
        which would otherwise pull the slip: where two layers' columns overlap a non-linear
        response does not add them.
    parametrization
        Scattering-factor table of the cross-sections.
    dtype
        torch.float32 (fast) or torch.float64 (tests).
    transfer_floor
        Reflections whose transfer, blurred by half the optics' source size, is below this
        (relative to 1 at k = 0) are left out: near the band limit the probe passes almost
        nothing (1e-3 keeps ~80 % of them and changes the image by < 1e-3 of its contrast).
    """

    def __init__(self, material, layers: int, optics: Optics, sampling_A: float,
                 shape: tuple[int, int], background_degree: int = 2,
                 parametrization: str = "kirkland", dtype=torch.float32,
                 device: torch.device | str = "cpu", transfer_floor: float = 1e-3,
                 response_degree: int = 1) -> None:
        self.material = get_material(material)
        if layers not in (2, 3):
            raise UsageError(f"the fit renders bilayers and trilayers, not {layers} layers")
        if not (math.isfinite(sampling_A) and sampling_A > 0):
            raise UsageError(f"the sampling {sampling_A} Å/px must be a positive number")
        ny, nx = (int(shape[0]), int(shape[1]))
        if ny < 8 or nx < 8:
            raise UsageError(f"a fitted window needs at least 8 × 8 pixels, not {ny} × {nx}")
        if not 0 <= background_degree <= 4:
            raise UsageError("the background polynomial's degree must be between 0 and 4")
        if not 1 <= response_degree <= 3:
            raise UsageError("the detector response's degree must be between 1 and 3")
        self.layers, self.optics, self.sampling_A = layers, optics, float(sampling_A)
        self.shape = (ny, nx)
        self.dtype, self.device = dtype, torch.device(device)
        self.ctype = torch.complex64 if dtype == torch.float32 else torch.complex128
        m = self.material
        cell = m.cell_2d
        recip = np.linalg.inv(cell).T  # rows a*, b*: a . a* = 1
        kmax = optics.probe_bandlimit_inv_A
        # every reciprocal vector inside the probe's band limit, one of each +-G pair (the image
        # is real: c_-G = conj(c_G)); G = 0 is the mean, which the background's offset carries
        hmax = int(math.ceil(kmax * m.a_A)) + 1
        kmx = int(math.ceil(kmax * m.b_A)) + 1
        hk = np.array([(h, k) for k in range(0, kmx + 1) for h in range(-hmax, hmax + 1)
                       if k > 0 or h > 0], dtype=float)
        G = hk @ recip
        g_len = np.linalg.norm(G, axis=1)
        keep = g_len < kmax
        hk, G, g_len = hk[keep], G[keep], g_len[keep]
        transfer = probe_transfer(optics, g_len)
        # drop the reflections the probe passes almost nothing of, even with half the optics'
        # source size (the fit may sharpen the blur a little, rarely by half)
        half_blur = 0.25 * (optics.source_size_A * FWHM_TO_SIGMA) ** 2
        keep = np.abs(transfer) * np.exp(-2 * np.pi**2 * half_blur * g_len**2) > transfer_floor
        hk, G, g_len, transfer = hk[keep], G[keep], g_len[keep], transfer[keep]
        self.hk, self.n_G = hk, len(hk)
        numbers = m.numbers()
        sigma = adf_cross_sections(numbers, optics, parametrization)
        heavy = numbers == numbers.max()
        basis = m.frac_ab @ cell  # Cartesian in-plane positions of one layer's atoms
        phase = np.exp(-2j * np.pi * (G @ basis.T))  # (n_G, n_atoms)
        area = m.area_A2
        f_heavy = (phase[:, heavy] * sigma[heavy]).sum(axis=1) / area
        f_light = (phase[:, ~heavy] * sigma[~heavy]).sum(axis=1) / area
        self.light_present = bool((~heavy).any())
        #: mean intensity of the stack (the G = 0 term), for reference
        self.mean_intensity = float(sigma.sum() / area * layers)

        def t(a, complex_=False):
            return torch.as_tensor(a, dtype=torch.complex128 if complex_ else torch.float64,
                                   device=self.device)

        self._G = t(G)  # (n_G, 2) Cartesian, 1/Å
        self._g2 = t(g_len**2)
        self._transfer = t(transfer)
        self._f_heavy = t(f_heavy, True)
        self._f_light = t(f_light, True)
        self._g_dot_units = t(G @ m.unit_vectors.T)  # (n_G, 2): G . a_hat, G . b_hat
        s = self.sampling_A
        self._x = t((np.arange(nx) - (nx - 1) / 2.0) * s)
        self._y = t((np.arange(ny) - (ny - 1) / 2.0) * s)
        half = max((nx - 1) / 2.0, (ny - 1) / 2.0) * s
        terms = polynomial_terms(background_degree)
        xx = self._x[None, :] / half
        yy = self._y[:, None] / half
        self.poly = torch.stack([(xx**px * yy**py).expand(ny, nx) for px, py in terms]).to(dtype)
        self.layout = ParameterLayout(n_slip=2 * (layers - 1), n_poly=len(terms),
                                      n_response=response_degree)
        #: the starting blur: the optics' source size as a Gaussian variance (Å²)
        self.start_blur_var_A2 = (optics.source_size_A * FWHM_TO_SIGMA) ** 2

    # --- parameters ---------------------------------------------------------------------------
    def default_theta(self, slips, origin_A=None) -> torch.Tensor:
        """Nonlinear parameters (B, n_theta) float64 at the given slips (B, n_slip), origin
        (B, 2) (default 0), no deformation, the optics' blur and cross-sections."""
        slips = torch.as_tensor(np.asarray(slips, dtype=float), dtype=torch.float64,
                                device=self.device).reshape(-1, self.layout.n_slip)
        B = len(slips)
        theta = torch.zeros(B, self.layout.n_theta, dtype=torch.float64, device=self.device)
        theta[:, self.layout.slip] = slips
        if origin_A is not None:
            theta[:, self.layout.origin] = torch.as_tensor(
                np.asarray(origin_A, dtype=float), dtype=torch.float64,
                device=self.device).reshape(B, 2)
        theta[:, self.layout.blur] = self.start_blur_var_A2
        theta[:, self.layout.light] = 1.0
        return theta

    # --- coefficients ---------------------------------------------------------------------------
    def _layer_coefficients(self, theta: torch.Tensor):
        """Per-layer coefficients (B, L, n_G) complex128 and the envelope/origin factor."""
        lay = self.layout
        B = theta.shape[0]
        slips = theta[:, lay.slip].reshape(B, self.layers - 1, 2)
        # layer offsets along the a_hat/b_hat units: phase of layer l = -2 pi G . s_l
        gd = slips @ self._g_dot_units.T  # (B, n_int, n_G): G . D_t
        cum = torch.cumsum(gd, dim=1)
        offsets = torch.cat([torch.zeros_like(cum[:, :1]), cum], dim=1)  # (B, L, n_G)
        layer_phase = torch.exp(-1j * TWO_PI * offsets)
        origin = theta[:, lay.origin]
        o_phase = torch.exp(-1j * TWO_PI * (origin @ self._G.T))  # (B, n_G)
        env = self._transfer * torch.exp(-2.0 * math.pi**2 * theta[:, lay.blur:lay.blur + 1]
                                         * self._g2)
        w = theta[:, lay.light:lay.light + 1]
        motif = self._f_heavy + w * self._f_light  # (B, n_G)
        pre = env * o_phase  # (B, n_G) complex
        return pre, motif, layer_phase

    def coefficients(self, theta: torch.Tensor) -> torch.Tensor:
        """Fourier coefficients c_G exp(-2 pi i G.o) (B, n_G), complex128 (autograd-friendly)."""
        pre, motif, layer_phase = self._layer_coefficients(theta)
        return pre * motif * layer_phase.sum(dim=1)

    def _factors(self, theta: torch.Tensor, row_shifts: torch.Tensor | None = None,
                 G: torch.Tensor | None = None):
        """cos and sin of 2 pi (F^T G)_x x_j (B, n_G, nx) and of 2 pi (F^T G)_y y_i (B, n_G, ny):
        the real and imaginary parts of the x and y factors. The phases are formed in float64
        (they reach ~100 rad), their cos/sin in the renderer's dtype. Row shifts (B, ny) Å move
        row i's pixels to x_j + shift_i: a phase of the y factor, so rows stay separable.
        ``G``: reciprocal vectors per window (B, n_G, 2) instead of the material's (a rotated
        layer)."""
        lay = self.layout
        E = theta[:, lay.strain].reshape(-1, 2, 2)
        F = E + torch.eye(2, dtype=theta.dtype, device=theta.device)
        if G is None:
            gp = torch.einsum("gk,bkl->bgl", self._G, F)  # (F^T G)_l = sum_k F_kl G_k
        else:
            gp = torch.einsum("bgk,bkl->bgl", G, F)
        phx = (TWO_PI * gp[:, :, 0:1] * self._x[None, None, :]).to(self.dtype)
        phy = TWO_PI * gp[:, :, 1:2] * self._y[None, None, :]
        if row_shifts is not None:
            phy = phy + TWO_PI * gp[:, :, 0:1] * row_shifts[:, None, :].to(phy.dtype)
        phy = phy.to(self.dtype)
        return torch.cos(phx), torch.sin(phx), torch.cos(phy), torch.sin(phy)

    def _synthesize(self, coeffs: torch.Tensor, factors) -> torch.Tensor:
        """2 Re sum_G C_G ey[G, i] ex[G, j] for coefficient sets (B, S, n_G) -> (B, ny, S, nx),
        as one real matrix product per window: [eyr, -eyi] (ny x 2 n_G) times the stacked real
        and imaginary parts of C ex (2 n_G x S nx)."""
        exr, exi, eyr, eyi = factors
        B, S, nG = coeffs.shape
        ny, nx = self.shape
        cr = coeffs.real.to(self.dtype).transpose(1, 2)[..., None]  # (B, n_G, S, 1)
        ci = coeffs.imag.to(self.dtype).transpose(1, 2)[..., None]
        xr, xi = exr[:, :, None, :], exi[:, :, None, :]  # (B, n_G, 1, nx)
        if torch.is_grad_enabled() and (coeffs.requires_grad or exr.requires_grad):
            right = torch.cat([cr * xr - ci * xi, cr * xi + ci * xr], dim=1)  # for autograd
        else:
            # real and imaginary parts of C ex written in place (four passes, no temporaries)
            right = torch.empty(B, 2 * nG, S, nx, dtype=self.dtype, device=self.device)
            re, im = right[:, :nG], right[:, nG:]
            torch.mul(cr, xr, out=re)
            re.addcmul_(ci, xi, value=-1.0)
            torch.mul(cr, xi, out=im)
            im.addcmul_(ci, xr)
        left = torch.cat([eyr, -eyi], dim=1).transpose(1, 2)  # (B, ny, 2 n_G)
        out = torch.bmm(left, right.reshape(B, 2 * nG, S * nx))
        return (2.0 * out).reshape(B, ny, S, nx)

    # --- images ---------------------------------------------------------------------------
    def lattice_image(self, theta: torch.Tensor, row_shifts: torch.Tensor | None = None
                      ) -> torch.Tensor:
        """The stack's image without intensity scale and background (B, ny, nx)."""
        return self._synthesize(self.coefficients(theta)[:, None],
                                self._factors(theta, row_shifts))[:, :, 0]

    def render(self, theta: torch.Tensor, beta: torch.Tensor,
               row_shifts: torch.Tensor | None = None) -> torch.Tensor:
        """The model of the windows (B, ny, nx): the detector response of the stack's image
        plus the polynomial background; ``row_shifts`` (B, ny) Å move each row along x (scan
        jitter). Differentiable with torch autograd in every parameter."""
        lattice = self.lattice_image(theta, row_shifts)
        nr = self.layout.n_response
        coef = beta.to(lattice.dtype)
        bg = torch.einsum("bm,mij->bij", coef[:, nr:], self.poly)
        return sum(coef[:, k - 1, None, None] * lattice**k for k in range(1, nr + 1)) + bg

    def model_and_jacobian(self, theta: torch.Tensor, beta: torch.Tensor, jacobian: bool = True,
                           row_shifts: torch.Tensor | None = None):
        """The model (B, N), its transposed Jacobian (B, n_params, N) in ``theta`` then
        ``beta`` (rows: parameters; from derivative coefficient sets on the same x/y factors,
        see the module docstring) and the lattice image (B, N). With ``jacobian=False`` the
        Jacobian is None. With ``row_shifts`` (B, ny) a fourth array follows: d model / d x
        (B, N), each pixel's derivative along x — a row shift's Jacobian, row by row."""
        lay = self.layout
        B = theta.shape[0]
        ny, nx = self.shape
        N = ny * nx
        factors = self._factors(theta, row_shifts)
        pre, motif, layer_phase = self._layer_coefficients(theta)
        per_layer = pre[:, None] * motif[:, None] * layer_phase  # (B, L, n_G)
        c = per_layer.sum(dim=1)
        nr = lay.n_response
        coef = beta.to(self.dtype)
        background = coef[:, nr:] @ self.poly.reshape(-1, N)

        def response(lat):  # sum_k alpha_k L^k and its slope d/dL
            value = coef[:, :1] * lat
            slope = coef[:, :1].expand_as(lat)
            for k in range(2, nr + 1):
                value = value + coef[:, k - 1:k] * lat**k
                slope = slope + k * coef[:, k - 1:k] * lat ** (k - 1)
            return value, slope

        if not jacobian:
            lattice = self._synthesize(c[:, None], factors).reshape(B, N)
            out = (response(lattice)[0] + background, None, lattice)
            return out if row_shifts is None else (*out, None)
        sets = [c]
        # slip of interface t moves every layer above it: d c / d D_t = sum_{l > t} c_l * phase'
        for t in range(self.layers - 1):
            above = per_layer[:, t + 1:].sum(dim=1)
            for comp in range(2):
                sets.append(above * (-1j * TWO_PI) * self._g_dot_units[:, comp])
        sets.append(c * self._G[:, 0] * (1j * TWO_PI))  # Q_x
        sets.append(c * self._G[:, 1] * (1j * TWO_PI))  # Q_y
        sets.append(c * (-2.0 * math.pi**2) * self._g2)  # d / d v
        sets.append(pre * self._f_light * layer_phase.sum(dim=1))  # d / d w
        images = self._synthesize(torch.stack(sets, dim=1), factors)  # (B, ny, S, nx)
        n_slip = lay.n_slip
        Jt = torch.empty(B, lay.n_params, ny, nx, dtype=self.dtype, device=self.device)
        lattice = images[:, :, 0].reshape(B, N)
        value, slope = response(lattice)
        a = slope.reshape(B, ny, nx)  # d model / d L, per pixel
        for k in range(n_slip):
            torch.mul(images[:, :, 1 + k], a, out=Jt[:, k])
        qx, qy = images[:, :, 1 + n_slip], images[:, :, 2 + n_slip]
        o = lay.origin.start
        torch.mul(qx, -a, out=Jt[:, o])
        torch.mul(qy, -a, out=Jt[:, o + 1])
        xs = self._x[None, None, :] if row_shifts is None else (
            self._x[None, None, :] + row_shifts[:, :, None])
        xg = xs.to(self.dtype) * a
        yg = self._y.to(self.dtype)[:, None][None] * a
        e = lay.strain.start  # E_xx, E_xy, E_yx, E_yy: r_l Q_k
        torch.mul(qx, xg, out=Jt[:, e])
        torch.mul(qx, yg, out=Jt[:, e + 1])
        torch.mul(qy, xg, out=Jt[:, e + 2])
        torch.mul(qy, yg, out=Jt[:, e + 3])
        torch.mul(images[:, :, 3 + n_slip], a, out=Jt[:, lay.blur])
        torch.mul(images[:, :, 4 + n_slip], a, out=Jt[:, lay.light])
        Jt = Jt.reshape(B, lay.n_params, N)
        for k in range(1, nr + 1):
            Jt[:, lay.n_theta + k - 1] = lattice**k
        Jt[:, lay.n_theta + nr:] = self.poly.reshape(1, -1, N)
        if row_shifts is None:
            return value + background, Jt, lattice
        F = theta[:, lay.strain].reshape(-1, 2, 2).to(self.dtype) + torch.eye(
            2, dtype=self.dtype, device=self.device)
        # d u / d x = F e_x: the lattice moves under a row shift as under the pixel's x
        dx = a * (qx * F[:, 0, 0, None, None] + qy * F[:, 1, 0, None, None])
        return value + background, Jt, lattice, dx.reshape(B, N)

    # --- data ---------------------------------------------------------------------------
    def project(self, windows: torch.Tensor) -> torch.Tensor:
        """The windows' components on the undeformed lattice's Fourier factors:
        d_G = sum_ij w_ij exp(-2 pi i G.r_ij), (B, n_G) complex."""
        gx = self._G[:, 0:1] * self._x[None, :]
        gy = self._G[:, 1:2] * self._y[None, :]
        ex = torch.exp(-1j * TWO_PI * gx)  # (n_G, nx), conjugate factors
        ey = torch.exp(-1j * TWO_PI * gy)
        w = windows.to(torch.float64)
        w = w - w.mean(dim=(1, 2), keepdim=True)
        tmp = torch.einsum("bij,gj->big", w.to(torch.complex128), ex)
        return torch.einsum("big,gi->bg", tmp, ey)

    def initialise(self, windows: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """The starting parameters for windows (B, ny, nx): ``theta`` with the stack's
        translation found (:meth:`find_origin`)."""
        theta = theta.clone()
        theta[:, self.layout.origin] = self.find_origin(windows, theta)
        return theta

    def find_origin(self, windows: torch.Tensor, theta: torch.Tensor, grid: int = 32
                    ) -> torch.Tensor:
        """The stack translation (B, 2) Å that best correlates the model at ``theta`` (its
        slips, blur, cross-sections; no deformation) with each window, searched on a
        ``grid`` x ``grid`` lattice of positions over one cell (the fit refines it)."""
        d = self.project(windows)
        t0 = theta.clone()
        t0[:, self.layout.origin] = 0.0
        c = self.coefficients(t0)
        u = (torch.arange(grid, dtype=torch.float64, device=self.device) / grid)
        uu, vv = torch.meshgrid(u, u, indexing="ij")
        frac = torch.stack([uu.ravel(), vv.ravel()], dim=1)  # (grid^2, 2)
        hk = torch.as_tensor(self.hk, dtype=torch.float64, device=self.device)
        phases = torch.exp(-1j * TWO_PI * (frac @ hk.T))  # exp(-2 pi i G.o)
        score = ((c * d.conj()) @ phases.T).real  # (B, grid^2)
        best = frac[score.argmax(dim=1)]
        cell = torch.as_tensor(self.material.cell_2d, dtype=torch.float64, device=self.device)
        return best @ cell
