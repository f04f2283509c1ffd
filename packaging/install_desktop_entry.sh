#!/usr/bin/env bash
# Install stackview's desktop entry, icons and file types for the current user (freedesktop:
# GNOME, KDE, Xfce ...), so images open in stackview from the file manager.
#
#   packaging/install_desktop_entry.sh                 # Exec: 'stackview' on PATH (pip install)
#   packaging/install_desktop_entry.sh --exec /opt/stackview/stackview   # the frozen app
#
# Writes into ${XDG_DATA_HOME:-~/.local/share}: applications/stackview.desktop,
# mime/packages/stackview.xml, icons/hicolor/*/apps/stackview.{png,svg}; then refreshes the
# MIME, desktop and icon caches where those tools are installed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
icons="$root/stackview/resources/icons"
exec_cmd="stackview"
if [[ "${1:-}" == "--exec" ]]; then
    [[ -n "${2:-}" ]] || { echo "install_desktop_entry: --exec needs the path of the stackview executable." >&2; exit 2; }
    exec_cmd="$(realpath "$2")"
    [[ -x "$exec_cmd" ]] || { echo "install_desktop_entry: $exec_cmd is not an executable file." >&2; exit 2; }
elif [[ $# -gt 0 ]]; then
    echo "install_desktop_entry: unknown option $1 (use --exec PATH)." >&2
    exit 2
fi
if [[ ! -d "$icons" ]]; then  # the frozen app keeps stackview/resources/ in _internal/ too
    icons="$(dirname "$exec_cmd")/_internal/stackview/resources/icons"
fi
data="${XDG_DATA_HOME:-$HOME/.local/share}"

mkdir -p "$data/applications" "$data/mime/packages" "$data/icons/hicolor/scalable/apps"
# quote the path in Exec (desktop-entry spec) in case it holds spaces
sed -e "s|^Exec=stackview |Exec=\"$exec_cmd\" |" -e "s|^TryExec=stackview$|TryExec=$exec_cmd|" \
    "$here/stackview.desktop" > "$data/applications/stackview.desktop"
cp "$here/stackview-mime.xml" "$data/mime/packages/stackview.xml"
cp "$icons/stackview.svg" "$data/icons/hicolor/scalable/apps/stackview.svg"
for png in "$icons"/stackview-*.png; do
    size="$(basename "$png" .png)"; size="${size#stackview-}"
    mkdir -p "$data/icons/hicolor/${size}x${size}/apps"
    cp "$png" "$data/icons/hicolor/${size}x${size}/apps/stackview.png"
done

command -v update-mime-database >/dev/null && update-mime-database "$data/mime" >/dev/null 2>&1 || true
command -v update-desktop-database >/dev/null && update-desktop-database "$data/applications" || true
command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q -t "$data/icons/hicolor" || true
echo "installed stackview.desktop (Exec: $exec_cmd), its file types and icons under $data"
