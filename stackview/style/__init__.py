"""Trident-enhanced DRIT style transfer: make noise-free simulations look experimental.

The three prongs of the paper (``paper/ted-gen-paper.txt``) live in separate modules:
selection of the simulations closest to the experimental images (:mod:`.selection`), affine
augmentation of both domains (:mod:`.augment`) and DRIT with the content-consistency loss
(:mod:`.networks`, :mod:`.losses`, :mod:`.trainer`). :mod:`.translate` applies a trained style
bundle (:mod:`.bundle`) to images of any size; :mod:`.metrics`, :mod:`.physics_noise` and
:mod:`.retention` evaluate the result.

Domain convention (as in the official release): domain **A** is the noise-free simulation,
domain **B** the experimental microscope style. Images are grey, one channel, min–max normalised
to [0, 1]; the networks see them scaled to [-1, 1].

Importing this package is cheap and must stay so (the CLI imports it at start-up): torch is
imported only by the modules that need it, never here. Nothing in this package imports Qt.
"""

from stackview.style.config import PRESETS, StyleConfig

__all__ = ["PRESETS", "StyleConfig"]
