"""Physics fit: refine a window's labels by fitting the incoherent ADF-STEM model to it.

:mod:`.renderer` renders a window of a slip-stacked multilayer differentiably in torch (the
incoherent model of :mod:`stackview.simulation.incoherent`, written as the lattice's Fourier
series), :mod:`.settings` holds what a fit is asked (:class:`FitSettings`) and what it
returns (:class:`FitResult`), :mod:`.fit` fits labels, lattice origin, local scale/shear, blur,
intensity and a smooth background to batches of windows (Levenberg–Marquardt on the torch
Jacobian; Adam as a slow reference), :mod:`.uncertainty` turns the curvature at the optimum into
marginal σ of the labels (Laplace approximation, corrected for correlated residuals), and
:mod:`.maps` runs it over every window of an analysis map with progress and cancel.

Torch is imported by these modules; nothing here imports Qt.
"""

__all__ = ["FitResult", "FitSettings", "WindowFitter", "fit_window", "fit_windows"]


def __getattr__(name):
    # torch loads only when a fit is asked for (``import stackview.fit`` stays cheap)
    if name in ("FitResult", "FitSettings"):
        from stackview.fit import settings

        return getattr(settings, name)
    if name in __all__:
        from stackview.fit import fit

        return getattr(fit, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
