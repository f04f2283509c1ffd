"""The one-sentence error text the CLI prints and the GUI shows (stackview.errors)."""

import pytest

from stackview.errors import UsageError, one_sentence


@pytest.mark.parametrize("exc, text", [
    (UsageError("unknown material 'Foo'\nmore detail"), "Unknown material 'Foo'."),
    (ValueError("done!"), "Done!"),
    (FileNotFoundError(2, "No such file or directory", "x.tif"),
     "No such file or directory: x.tif."),
    (RuntimeError(""), "RuntimeError."),
    # a file or material name at the start keeps its spelling
    (UsageError("mos2_train.zarr exists; choose another name"),
     "mos2_train.zarr exists; choose another name."),
])
def test_one_sentence(exc, text):
    assert one_sentence(exc) == text
