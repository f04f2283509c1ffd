#!/usr/bin/env bash
# Build the one-folder desktop app with PyInstaller (packaging/stackview.spec) in a clean virtual
# environment and smoke-test the result; exits non-zero when the build or any check fails.
#
#   nice -n 19 packaging/build_and_smoke.sh            # build + smoke test
#   packaging/build_and_smoke.sh --smoke-only          # test an existing build again
#   STACKVIEW_BUILD_REUSE_SITE=1 packaging/build_and_smoke.sh   # reuse PYTHON's packages
#
# The app is built from the wheel, so it cannot drift from what `pip install` gives: the wheel
# is built from this checkout (pip wheel --no-deps), installed into the build environment
# (--force-reinstall, every build), and PyInstaller runs from outside the repository; the spec
# refuses a stackview imported from a checkout.
#
# STACKVIEW_BUILD_DIR (default build/pyinstaller in the repository) holds the virtual
# environment (venv/, made once, reused), wheel/, PyInstaller's work/ and dist/stackview/ (the
# app), and smoke/ with the checks' outputs and report.txt. PYTHON (default python3) makes the
# venv. STACKVIEW_BUILD_REUSE_SITE=1 makes it with --system-site-packages (venv-site/) and
# installs only PyInstaller and the wheel into it: no second download of torch & co.
#
# The checks run the frozen executable from another folder with the repository out of reach, so
# only what was bundled can be used:
#   1. `stackview --version` prints this checkout's version;
#   2. `stackview analyze` on the bundled sample (from _internal/stackview/resources/samples) with the
#      bundled ReS2 model writes map.csv, map_*.tif, figure.png and summary.json, and the slip
#      it reads is the one documented in the README (Da 0.80 +- 0.2 A, Db 1.95 +- 0.2 A);
#   3. the window starts offscreen (STACKVIEW_GUI_EXIT_AFTER_MS): start time measured twice;
#   4. the window's own smoke test (STACKVIEW_GUI_SMOKE_TEST): welcome panel -> open the sample
#      -> Run -> Export, exit code 0 and the exported files.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
build="$(realpath -m "${STACKVIEW_BUILD_DIR:-$root/build/pyinstaller}")"
python="${PYTHON:-python3}"
smoke_only=0
[[ "${1:-}" == "--smoke-only" ]] && smoke_only=1

say() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
fail() { say "FAILED: $*"; exit 1; }

mkdir -p "$build"
app="$build/dist/stackview"
exe="$app/stackview"

if [[ $smoke_only -eq 0 ]]; then
    reuse="${STACKVIEW_BUILD_REUSE_SITE:-0}"
    venv="$build/venv"
    [[ "$reuse" == 1 ]] && venv="$build/venv-site"
    vpy="$venv/bin/python"
    fresh_venv=0
    if [[ ! -x "$vpy" ]]; then
        say "making the build environment in $venv"
        if [[ "$reuse" == 1 ]]; then
            "$python" -m venv --system-site-packages "$venv"
        else
            "$python" -m venv "$venv"
        fi
        # PEP 639 licence metadata needs setuptools >= 77 (a venv's own copy may be older)
        "$vpy" -m pip install -q "setuptools>=77" "pyinstaller>=6.10"
        fresh_venv=1
    fi
    say "building the wheel from $root"
    rm -rf "$build/wheel"
    "$vpy" -m pip wheel -q --no-deps --no-build-isolation -w "$build/wheel" "$root" \
        > "$build/wheel.log" 2>&1 || { tail -20 "$build/wheel.log"; fail "the wheel did not build"; }
    wheel=$(ls "$build"/wheel/stackview-*.whl)
    if [[ "$reuse" == 1 || $fresh_venv -eq 0 ]]; then
        "$vpy" -m pip install -q --no-deps --force-reinstall "$wheel"
    else  # a clean environment: the wheel with its dependencies, as a user installs it
        "$vpy" -m pip install -q "$wheel[packaging]"
    fi
    where=$(cd "$build" && "$vpy" -c "import stackview; print(stackview.__file__)")
    [[ "$where" == "$venv"/* ]] || fail "the build environment imports stackview from $where, not from the wheel"
    say "stackview from the wheel $(basename "$wheel") ($where); PyInstaller $("$venv/bin/pyinstaller" --version)"
    rm -rf "$app"
    t0=$(date +%s)
    (cd "$build" && env -u PYTHONPATH "$venv/bin/pyinstaller" --noconfirm --log-level WARN \
        --distpath "$build/dist" --workpath "$build/work" "$root/packaging/stackview.spec") \
        > "$build/pyinstaller.log" 2>&1 || { tail -30 "$build/pyinstaller.log"; fail "PyInstaller did not build the app (log: $build/pyinstaller.log)"; }
    build_s=$(( $(date +%s) - t0 ))
    say "built $app in ${build_s} s"
fi
[[ -x "$exe" ]] || fail "there is no built app at $exe"

smoke="$build/smoke"
rm -rf "$smoke"
mkdir -p "$smoke/config" "$smoke/data" "$smoke/cwd"
report="$smoke/report.txt"
size_bytes=$(du -sb "$app" | cut -f1)
size_h=$(du -sh "$app" | cut -f1)
files=$(find "$app" -type f | wc -l)
{
    echo "stackview frozen build: $app"
    echo "date: $(date -Iseconds)   machine: $(nproc) CPU cores, $(uname -m), no GPU use"
    [[ -n "${build_s:-}" ]] && echo "build time: ${build_s} s (PyInstaller; from the wheel $(basename "$wheel"))"
    echo "size on disk: $size_h ($size_bytes bytes, $files files)"
} > "$report"

# the frozen app must not reach this checkout or a Python environment; extra VAR=value
# arguments before the app's arguments go into its environment
run_app() {
    local vars=()
    while [[ "${1:-}" == *=* && "${1:-}" != -* ]]; do vars+=("$1"); shift; done
    (cd "$smoke/cwd" && env -u PYTHONPATH -u VIRTUAL_ENV QT_QPA_PLATFORM=offscreen \
        XDG_CONFIG_HOME="$smoke/config" STACKVIEW_DATA_DIR="$smoke/data" "${vars[@]}" \
        timeout 1200 "$exe" "$@")
}

say "check 1: --version"
version=$(run_app --version)
expected="stackview $(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$root/stackview/__init__.py")"
[[ "$version" == "$expected" ]] || fail "the app says '$version', expected '$expected'"
echo "version: $version" >> "$report"

say "check 2: stackview analyze on the bundled sample"
sample="$app/_internal/stackview/resources/samples/ReS2_bilayer_tedgen_sample4.png"
[[ -f "$sample" ]] || fail "the bundled sample is missing from the app ($sample)"
t0=$(date +%s.%N)
run_app analyze "$sample" --material ReS2 --out "$smoke/cli" > "$smoke/analyze.log" 2>&1 \
    || { cat "$smoke/analyze.log"; fail "stackview analyze failed"; }
analyze_s=$(printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)")
out="$smoke/cli/ReS2_bilayer_tedgen_sample4"
for f in map.csv figure.png summary.json; do
    [[ -s "$out/$f" ]] || fail "analyze wrote no $f"
done
ls "$out"/map_*.tif > /dev/null 2>&1 || fail "analyze wrote no map_*.tif"
slip=$("$python" - "$out/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
da, db, n = s["Da_A_median"], s["Db_A_median"], s["n_patches"]
ok = n > 0 and abs(da - 0.80) < 0.2 and abs(db - 1.95) < 0.2 and s["model"] == "ReS2_slip_bilayer"
print(f"{'ok' if ok else 'WRONG'} {n} windows, Da {da:.3f} A, Db {db:.3f} A, model {s['model']}")
PY
)
[[ "$slip" == ok* ]] || fail "analyze read an unexpected slip: $slip"
echo "analyze (CLI) on the bundled sample: ${slip#ok }, ${analyze_s} s wall" >> "$report"
say "  ${slip#ok } in ${analyze_s} s"

say "check 3: window start time (offscreen)"
for attempt in first second; do
    t0=$(date +%s.%N)
    run_app STACKVIEW_GUI_EXIT_AFTER_MS=100 > "$smoke/start_$attempt.log" 2>&1 \
        || { cat "$smoke/start_$attempt.log"; fail "the window did not start"; }
    wall=$(printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)")
    shown=$(grep -o 'window shown [0-9.]* s' "$smoke/start_$attempt.log" | grep -o '[0-9.]*') \
        || fail "the window never said it was shown"
    echo "window start ($attempt run): shown ${shown} s after the command started; process ${wall} s wall (incl. 0.1 s shown)" >> "$report"
    say "  $attempt run: window shown after ${shown} s (${wall} s wall)"
done

say "check 4: the window's smoke test (welcome panel -> sample -> Run -> Export)"
t0=$(date +%s.%N)
run_app STACKVIEW_GUI_SMOKE_TEST="$smoke/gui" > "$smoke/gui.log" 2>&1 \
    || { cat "$smoke/gui.log"; fail "the window's smoke test failed"; }
gui_s=$(printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)")
grep -q "smoke test passed" "$smoke/gui.log" || { cat "$smoke/gui.log"; fail "the window's smoke test did not report a pass"; }
[[ -s "$smoke/gui/ReS2_bilayer_tedgen_sample4/summary.json" ]] || fail "the window exported no summary.json"
echo "window smoke test: $(grep -o 'smoke test passed.*' "$smoke/gui.log" | sed 's/\.$//'); ${gui_s} s wall" >> "$report"
say "  passed in ${gui_s} s"

echo "result: all checks passed" >> "$report"
say "all checks passed; report: $report"
cat "$report"
