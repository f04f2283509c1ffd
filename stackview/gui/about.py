"""Help → About stackview: version, licence, the key dependencies' licences and the NOTICE.

The attribution of bundled data is read from the NOTICE file at run time (the repository's in a
clone, the copy in the package metadata of an installed wheel or sdist, the one beside the
package in the frozen app), so the dialog never drifts from it. Qt only.
"""

from __future__ import annotations

import html
import platform
from importlib import metadata

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QTextBrowser, QVBoxLayout

from stackview import __version__
from stackview.paths import PACKAGE_DIR

LICENCE = "GPL-3.0-or-later"

#: (distribution, what it does for stackview, licence as its authors state it); the licences
#: are written here because frozen apps and some installs carry no package metadata
DEPENDENCIES = (
    ("PySide6-Essentials", "Qt for Python: the window", "LGPL-3.0-only (or GPL-2.0/3.0)"),
    ("pyqtgraph", "image and plot views", "MIT"),
    ("numpy", "arrays", "BSD-3-Clause"),
    ("scipy", "signal processing, fitting", "BSD-3-Clause"),
    ("torch", "PyTorch: the regressor and style networks",
     "BSD-3-Clause (with bundled third-party parts)"),
    ("torchvision", "ResNet backbones", "BSD-3-Clause"),
    ("ase", "atomic structures, CIF/xyz/POSCAR", "LGPL-2.1-or-later"),
    ("abtem", "probe and multislice simulation", "GPL-3.0-or-later"),
    ("scikit-learn", "t-SNE, k-means", "BSD-3-Clause"),
    ("tifffile", "TIFF reading and writing", "BSD-3-Clause"),
    ("rosettasciio", "DM3/DM4, EMD, SER, MRC reading", "GPL-3.0-or-later"),
    ("safetensors", "model weights without pickle", "Apache-2.0"),
    ("dask", "parallel dataset generation", "BSD-3-Clause"),
    ("matplotlib", "exported figures", "Matplotlib licence (PSF-based)"),
    ("pillow", "PNG/JPEG reading", "MIT-CMU"),
    ("chgnet", "energy landscapes (optional, .[pel])", "BSD-3-Clause"),
    ("dftd3", "D3 dispersion (optional, .[pel])", "LGPL-3.0-or-later"),
)


def installed_version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def notice_text() -> str:
    """The NOTICE file's text, or one sentence saying where to find it."""
    checkout = PACKAGE_DIR.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "NOTICE").is_file():
        return (checkout / "NOTICE").read_text(encoding="utf-8")  # a clone: the current file
    try:  # an installed wheel or sdist (and the frozen app): the license files in .dist-info
        for name in ("licenses/NOTICE", "NOTICE"):
            text = metadata.distribution("stackview").read_text(name)
            if text:
                return text
    except metadata.PackageNotFoundError:
        pass
    try:
        return (checkout / "NOTICE").read_text(encoding="utf-8")  # frozen app: _internal/NOTICE
    except OSError:
        return ("The NOTICE file with the attribution of the bundled data is missing from this "
                "installation; it is part of stackview's source distribution.")


def about_html() -> str:
    """The dialog's text (also handy for tests and the CLI)."""
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{html.escape(installed_version(name))}</td>"
        f"<td>{html.escape(licence)}</td><td>{html.escape(role)}</td></tr>"
        for name, role, licence in DEPENDENCIES)
    return (
        f"<h2>stackview {html.escape(__version__)}</h2>"
        "<p>Interlayer slip and twist of 2D van der Waals stacks from ADF-STEM images.</p>"
        f"<p>Free software under the GNU General Public License, version 3 or any later version "
        f"({LICENCE}); it comes with no warranty. Python {html.escape(platform.python_version())}."
        "</p>"
        "<h3>Key dependencies</h3>"
        "<table cellspacing='0' cellpadding='2'><tr><th align='left'>package</th>"
        "<th align='left'>version</th><th align='left'>licence</th>"
        f"<th align='left'>used for</th></tr>{rows}</table>"
        "<h3>Bundled data and its attribution (NOTICE)</h3>"
        f"<pre style='white-space: pre-wrap'>{html.escape(notice_text())}</pre>"
    )


class AboutDialog(QDialog):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("aboutDialog")
        self.setWindowTitle("About stackview")
        self.resize(760, 620)
        self.header = QLabel(f"<b>stackview {__version__}</b> — {LICENCE}")
        self.text = QTextBrowser()
        self.text.setOpenExternalLinks(False)  # nothing here should reach the network
        self.text.setHtml(about_html())
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        buttons.accepted.connect(self.accept)
        layout = QVBoxLayout(self)
        layout.addWidget(self.header)
        layout.addWidget(self.text, 1)
        layout.addWidget(buttons)
