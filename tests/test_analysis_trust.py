"""The re-simulation agreement of windows (``stackview.analysis.trust``)."""

import numpy as np

from stackview.analysis.trust import Resimulator
from stackview.simulation import PRESETS


def test_orbit_ncc_of_the_two_families_at_one_rounded_slip():
    """A parallel reading and an antiparallel one of the same slip (family 0.49 and 0.51, which
    round alike) have orbits of different sizes; scoring one after the other must not reuse the
    other's members (it raised IndexError on a WS2 corpus image) and must tell them apart."""
    resim = Resimulator("MoS2", "slip", 0.16, 48, PRESETS["MoS2-60kV"])
    slip = (1.59, 0.92)  # the AB / A'B point: both families have a class there
    window = resim.simulation([*slip, 1.0])  # a clean antiparallel window
    assert len(resim.orbit([*slip, 0.49])) == 2 * len(resim.orbit([*slip, 0.51]))
    parallel = resim.ncc(window, [*slip, 0.49])
    antiparallel = resim.ncc(window, [*slip, 0.51])
    again = resim.ncc(window, [*slip, 0.49])
    assert antiparallel > 0.99
    assert parallel == again and parallel < antiparallel - 0.02
