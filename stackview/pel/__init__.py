"""Interlayer potential-energy landscapes (PEL) of slip-stacked bilayers (no Qt).

:mod:`~stackview.pel.landscape` holds the settings, :class:`~stackview.pel.landscape.Landscape`,
the energy symmetries and the summary; :mod:`~stackview.pel.compute` the calculators and the grid
job; :mod:`~stackview.pel.files` the CSV + JSON files, imports of a user's DFT grid and the
per-material cache; :mod:`~stackview.pel.plot` the heat map; :mod:`~stackview.pel.figure` the PEL
panel of an analysis figure; :mod:`~stackview.pel.commands` is ``stackview pel``. The modules
import one another in that order (checked by the import-linter contracts in pyproject.toml).
This package imports nothing heavy itself, so ``stackview pel --help`` stays fast.
"""
