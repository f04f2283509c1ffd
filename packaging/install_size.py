"""What an installation of stackview weighs, measured without downloading anything.

Walks the requirements of the installed ``stackview`` distribution (optionally with extras,
e.g. ``--extra pel``) through every level, as pip would resolve them on this platform, using
the distributions already installed in this environment, and adds up the sizes of the files
each one installed (its RECORD, as ``du`` of site-packages would count them, apparent sizes).
stackview's own share is its wheel's package (the bundled models and data inside).

    python packaging/install_size.py              # the default install: pip install stackview
    python packaging/install_size.py --extra pel  # with the energy-landscape extra
    python packaging/install_size.py --json       # machine-readable

A requirement with no installed distribution is listed as missing (its size is not counted).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from importlib import metadata

from packaging.markers import default_environment
from packaging.requirements import Requirement


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(root: str, extras: set[str]) -> tuple[dict[str, metadata.Distribution], list[str]]:
    """Every distribution ``root`` (with ``extras``) needs, and the requirements not found."""
    found: dict[str, metadata.Distribution] = {}
    missing: list[str] = []
    todo = [(root, frozenset(extras))]
    seen: set[tuple[str, frozenset]] = set()
    base_env = default_environment()
    while todo:
        name, wanted = todo.pop()
        key = (canonical(name), wanted)
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
            continue
        found[canonical(dist.metadata["Name"])] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is not None:
                keep = any(req.marker.evaluate({**base_env, "extra": e}) for e in wanted | {""})
                if not keep:
                    continue
            todo.append((req.name, frozenset(req.extras)))
    return found, missing


def installed_bytes(dist: metadata.Distribution) -> int:
    total = 0
    for file in dist.files or []:
        try:
            path = file.locate()
            if path.is_file():
                total += path.stat().st_size
        except OSError:
            pass
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extra", action="append", default=[], help="an extra to include")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--top", type=int, default=12, help="largest distributions to list")
    args = parser.parse_args(argv)
    dists, missing = closure("stackview", set(args.extra))
    sizes = {name: installed_bytes(d) for name, d in dists.items()}
    if dists.get("stackview") is not None and sizes["stackview"] < 10_000_000:
        # an editable install records no package files: count the package folder itself
        from stackview.paths import PACKAGE_DIR

        sizes["stackview"] = sum(p.stat().st_size for p in PACKAGE_DIR.rglob("*")
                                 if p.is_file() and "__pycache__" not in p.parts)
    total = sum(sizes.values())
    nvidia = sum(s for n, s in sizes.items() if n.startswith("nvidia-") or n == "cuda-bindings"
                 or n.startswith("cuda-"))
    report = {
        "extras": args.extra, "distributions": len(dists), "total_bytes": total,
        "nvidia_cuda_bytes": nvidia, "missing": missing,
        "versions": {n: d.version for n, d in sorted(dists.items())},
        "bytes": dict(sorted(sizes.items(), key=lambda kv: -kv[1])),
        "python": sys.version.split()[0], "platform": sys.platform,
    }
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    gb = 1e9
    print(f"stackview{'[' + ','.join(args.extra) + ']' if args.extra else ''}: "
          f"{len(dists)} distributions, {total / gb:.2f} GB installed "
          f"(NVIDIA CUDA libraries {nvidia / gb:.2f} GB)")
    for name, size in list(report["bytes"].items())[:args.top]:
        print(f"  {size / 1e6:9.1f} MB  {name} {dists[name].version}")
    if missing:
        print(f"  not installed here (not counted): {', '.join(missing)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
