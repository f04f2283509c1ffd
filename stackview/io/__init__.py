"""Image readers, calibration and exporters (no Qt here)."""
