"""Analysis of inferred stacking: comparisons, slip-vector fields, interfaces, statistics, PEL.

Plain numpy/scipy/ASE; must not import Qt.
"""
