"""Core label spaces and symmetry shared by every layer (numpy only; no Qt, no torch)."""
