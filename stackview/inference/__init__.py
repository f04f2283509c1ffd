"""Stacking inference: symmetry-aware labels and loss, the regressor, prediction, SPM mapping.

``labels`` is numpy-only; modules that need torch import it themselves, so importing this
package stays cheap. No Qt here.
"""
