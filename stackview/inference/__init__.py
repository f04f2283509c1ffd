"""Stacking inference: the symmetry-aware loss, the regressor, training, prediction, evaluation
(the label spaces themselves are in :mod:`stackview.core.labels`).

``loss`` (symmetric MSE +
0.5·L1), ``regressor`` (torchvision backbone + the paper's head), ``train`` (Adam, warm-up/decay,
checkpoints, DDP), ``predict`` (patches → values + test-time-augmentation uncertainty) and
``evaluate`` (metrics, reports, the paper's studies) import torch themselves, so importing this
package stays cheap. ``commands`` holds ``stackview train|evaluate|study``. No Qt here.
"""
