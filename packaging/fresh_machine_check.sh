#!/usr/bin/env bash
# Fresh-machine check: clone this repository into an empty folder, make an empty virtual
# environment, run the README's set-up command exactly as written (install, then the main job on
# the bundled sample), check the output files, and print the time of each part and the installed
# size. Exits non-zero when any step fails.
#
#   nice -n 19 packaging/fresh_machine_check.sh          # removes its folder at the end
#   packaging/fresh_machine_check.sh --keep              # keeps it (prints where)
#
# The clone is of the committed HEAD (what a new user gets), not of uncommitted changes.
# FRESH_DIR picks the folder (default: a new one under ${TMPDIR:-/tmp}); PYTHON (default python3)
# makes the venv. pip's cache is switched off so nothing comes from earlier installs here.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
python="${PYTHON:-python3}"
keep=0
[[ "${1:-}" == "--keep" ]] && keep=1
work="${FRESH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/stackview-fresh.XXXXXX")}"
mkdir -p "$work"
say() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
fail() { say "FAILED: $*"; exit 1; }
cleanup() { if [[ $keep -eq 0 ]]; then rm -rf "$work"; else say "kept $work"; fi; }
trap cleanup EXIT

# the set-up command: the first line of the first ```bash block after '## Set-up' in the README
command=$(awk '/^## Set-up/{s=1} s&&/^```bash/{b=1; next} b&&NF{print; exit}' "$root/README.md")
[[ "$command" == *"pip install"*"&&"*"stackview analyze"* ]] \
    || fail "the README's set-up command was not found or changed shape: '$command'"
install_part="${command%% && *}"
job_part="${command#* && }"
say "README set-up command: $command"

git clone --quiet "$root" "$work/stackview"
say "cloned $(git -C "$work/stackview" log -1 --format='%h %s' | cut -c1-80)"
"$python" -m venv "$work/venv"
# as a user who typed 'source venv/bin/activate': python and stackview are the venv's
export PATH="$work/venv/bin:$PATH" VIRTUAL_ENV="$work/venv" PIP_NO_CACHE_DIR=1
unset PYTHONPATH
export STACKVIEW_DATA_DIR="$work/userdata"
cd "$work/stackview"
[[ "$(command -v python)" == "$work/venv/bin/python" ]] || fail "the venv's python is not first on PATH"

t0=$(date +%s)
bash -c "$install_part" > "$work/install.log" 2>&1 || { tail -20 "$work/install.log"; fail "the install failed"; }
install_s=$(( $(date +%s) - t0 ))
say "install: ${install_s} s"
t0=$(date +%s)
bash -c "$job_part" 2>&1 | tee "$work/job.log" || fail "the main job failed"
job_s=$(( $(date +%s) - t0 ))

out="results/ReS2_bilayer_tedgen_sample4"
for f in map.csv figure.png summary.json; do
    [[ -s "$out/$f" ]] || fail "the main job wrote no $out/$f"
done
ls "$out"/map_*.tif > /dev/null 2>&1 || fail "the main job wrote no $out/map_*.tif"
venv_size=$(du -sh "$work/venv" | cut -f1)
venv_bytes=$(du -sb "$work/venv" | cut -f1)
torch_version=$(python -c "import torch; print(torch.__version__)")
echo
echo "fresh-machine check passed on $(date -Iseconds), $(nproc) CPU cores, $(uname -m)"
echo "  install (\`$install_part\`): ${install_s} s"
echo "  main job (\`$job_part\`): ${job_s} s"
echo "  output: $(ls "$out" | tr '\n' ' ')"
echo "  installed size: venv $venv_size ($venv_bytes bytes; torch $torch_version), checkout $(du -sh "$work/stackview" | cut -f1)"
