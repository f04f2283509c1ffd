"""Image readers and exporters (no Qt here); the pixel-size calibration is science and lives in
:mod:`stackview.analysis.calibration`."""
