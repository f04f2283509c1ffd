#!/usr/bin/env bash
# Context fine-tunes of bundled models on a lent GPU (issue 19): each model in MODELS is
# fine-tuned from its bundled weights to read its window with CONTEXT px of image around it, on
# FIELD_PX simulated fields of its material (physics noise, plus DRIT-styled fields where the model
# was trained with a style), in two stages as the bundled ReS2 model was: consistency weight 10,
# then 300 (see docs/models.md, "Context"). Each result is evaluated on held-out fields of the same
# kind (the bare bundled model too, for comparison) and read at every margin the fields hold
# (benchmarks/context_margins.py: how far the window reading is from the dense one).
#
# On 2 CPU cores one context step takes 3-17 s (one model ≈ 14 h); on an H100 it should take a
# few tens of ms. The step counts are set from the throughput of the first stage run here.
#
# The working tree that travels to the device machine is limited to 64 MiB, and the bundled models
# alone are ~200 MB: before the run, untrack them for the call and carry only those trained, e.g.
#   git rm -r -q --cached stackview/resources/models && echo stackview/resources/models/ \
#     >> .git/info/exclude   # (undo afterwards: git reset -q; edit .git/info/exclude)
#   mkdir -p .carry && cp stackview/resources/models/{MoS2_slip_bilayer,ReSe2_slip_bilayer}.* \
#     stackview/resources/models/style_MoS2_60kV.* .carry/   # .carry/ ignored too
# and run `MODELS="MoS2_slip_bilayer ReSe2_slip_bilayer" INIT=.carry benchmarks/gpu_context_finetune.sh`
# with carry [".carry"]. Two ResNet-18 bundles (≈23 MB each) fit in what comes back ($OUT: 64 MiB).
#
# Knobs (environment): MODELS, INIT (folder with the bundles to start from and the style bundles;
# default the package's), FIELD_PX, CONTEXT, NTRAIN, NDRIT, NVAL, NTEST, BATCH, LR, STAGE_S (training
# seconds per stage), UNTIL (seconds since the start after which no new model starts), WORKERS,
# WORK, OUT, PRECISION. A tiny CPU rehearsal:
#   MODELS=MoS2_slip_bilayer NTRAIN=32 NDRIT=0 NVAL=16 NTEST=16 BATCH=4 STAGE_S=1 STEPS0=3 MIN_STEPS=2 \
#     PRECISION=auto benchmarks/gpu_context_finetune.sh
set -uo pipefail
OUT=${OUT:-$PWD/.gpuout}; WORK=${WORK:-/tmp/sv_ctx}
INIT=${INIT:-$PWD/stackview/resources/models}
MODELS=${MODELS:-MoS2_slip_bilayer ReSe2_slip_bilayer}
FIELD_PX=${FIELD_PX:-384}; CONTEXT=${CONTEXT:-64}
NTRAIN=${NTRAIN:-6000}; NDRIT=${NDRIT:-2000}; NVAL=${NVAL:-300}; NTEST=${NTEST:-1000}
BATCH=${BATCH:-32}; LR=${LR:-1e-4}; STAGE_S=${STAGE_S:-100}; STEPS0=${STEPS0:-200}; MIN_STEPS=${MIN_STEPS:-50}
UNTIL=${UNTIL:-300}; WORKERS=${WORKERS:-$(nproc)}; PRECISION=${PRECISION:-bf16}
mkdir -p "$OUT" "$WORK"
exec > >(tee -a "$OUT/log.txt") 2>&1
SECONDS=0
stamp() { echo "[$SECONDS s] $*"; }
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
SV="python3 -m stackview.cli"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

# the dataset arguments of a bundled model, from its card (material, task, layers, family,
# sampling, optics, orientation and robustness ranges), and its DRIT style bundle if it had one
card_args() {
  python3 - "$INIT/$1.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
d = c["training"]["dataset_spec"]
a = ["--task", d["task"], "--material", d["material"], "--sampling", str(d["sampling_A"]),
     "--optics", d["optics"], "--orientation", d["orientation"],
     "--vacancies", *map(str, d["vacancy_range"]), "--holes", str(d["hole_probability"]),
     "--masks", str(d["mask_probability"]), "--contamination", str(d["contamination_probability"]),
     "--psnr", *map(str, d["psnr_range_dB"]), "--noise-probability", str(d["noise_probability"])]
if d["task"] == "slip":
    a += ["--layers", str(d["layers"]), "--family", d.get("family", "parallel")]
else:
    a += ["--theta-range", *map(str, d["theta_range_deg"]), "--positions", str(d["positions"])]
print(" ".join(a))
PY
}
card_style() {
  python3 -c "import json,sys; s=json.load(open(sys.argv[1]))['style']; \
print(s.split('drit:')[1].rsplit('/',1)[-1] if 'drit:' in s else '')" "$INIT/$1.json"
}
card_window() {
  python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['patch_px'])" "$INIT/$1.json"
}

gen() {  # gen MODEL: its training, validation and test fields
  local m=$1 args style
  args=$(card_args "$m") || return 1
  style=$(card_style "$m")
  local run=(--patch-px "$FIELD_PX" --scheduler processes --workers "$WORKERS" --overwrite)
  $SV dataset make "$WORK/$m/train.zarr" $args --style physics --count "$NTRAIN" --seed 951 "${run[@]}" | tail -1 || return 1
  $SV dataset make "$WORK/$m/val.zarr" $args --style physics --count "$NVAL" --seed 953 "${run[@]}" | tail -1 || return 1
  $SV dataset make "$WORK/$m/test.zarr" $args --style physics --count "$NTEST" --seed 954 "${run[@]}" | tail -1 || return 1
  if [ -n "$style" ] && [ "$NDRIT" -gt 0 ]; then
    local d=(--style drit --style-bundle "$INIT/$style")
    $SV dataset make "$WORK/$m/drit_train.zarr" $args "${d[@]}" --count "$NDRIT" --seed 952 "${run[@]}" | tail -1 || return 1
    $SV dataset make "$WORK/$m/drit_test.zarr" $args "${d[@]}" --count "$(( NTEST / 2 ))" --seed 955 "${run[@]}" | tail -1 || return 1
  fi
}

RATE=""  # training images per second at this field size, from the first stage run here
stage() {  # stage MODEL INIT_FROM WEIGHT OUT_NAME
  local m=$1 from=$2 w=$3 name=$4 steps train=("$WORK/$1/train.zarr")
  [ -d "$WORK/$m/drit_train.zarr" ] && train+=("$WORK/$m/drit_train.zarr")
  if [ -z "$RATE" ]; then steps=$STEPS0
  else steps=$(python3 -c "print(max($MIN_STEPS, int($RATE * $STAGE_S / (2 * $BATCH))))"); fi
  stamp "$m: consistency $w, $steps steps"
  $SV -v train --dataset "${train[@]}" --validation "$WORK/$m/val.zarr" \
    --backbone resnet18 --head invariant --context "$CONTEXT" --window-px "$(card_window "$m")" \
    --context-consistency "$w" --steps "$steps" --batch-size "$BATCH" --lr "$LR" \
    --precision "$PRECISION" --checkpoint-every 0 --validate-every $(( steps / 4 + 1 )) \
    --init-from "$from" --out "$WORK/bundle/$name" --checkpoint-dir "$WORK/ckpt/$name" \
    --description "$m fine-tuned to read its window with $CONTEXT px of context (dense maps = window maps): $FIELD_PX-px fields of its material and style, every step reading each field at its margin and at a larger one, consistency weight $w (benchmarks/gpu_context_finetune.sh)" \
    2>&1 | grep -v "^INFO stackview.inference.train: step" || return 1
  RATE=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['training']['images_per_s'])" \
    "$WORK/bundle/$name.json")
  stamp "$m: $RATE images/s"
}

set -- $MODELS
stamp "data for $1"; gen "$1" || exit 1
while [ $# -gt 0 ]; do
  m=$1; shift
  if [ $# -gt 0 ]; then (gen "$1" > "$WORK/gen_$1.log" 2>&1; echo $? > "$WORK/gen_$1.rc") & fi
  stage "$m" "$INIT/$m" 10 "${m}_w10" || exit 1
  stage "$m" "$WORK/bundle/${m}_w10" 300 "$m" || exit 1
  rm -rf "$WORK/bundle/${m}_w10"*
  for t in test drit_test; do
    [ -d "$WORK/$m/$t.zarr" ] || continue
    $SV evaluate "$WORK/bundle/$m" --dataset "$WORK/$m/$t.zarr" --update-card "ctx_$t" \
      --out "$WORK/reports/$m/$t" --device auto | sed -n 1p
    $SV evaluate "$INIT/$m" --dataset "$WORK/$m/$t.zarr" --out "$WORK/reports/$m/bare_$t" \
      --device auto | sed -n 1p
  done
  python3 benchmarks/context_margins.py "$WORK/bundle/$m" "$WORK/$m/test.zarr" --n 300 \
    --out "$WORK/reports/$m/context_margins.json"
  if [ $# -gt 0 ]; then
    wait; [ "$(cat "$WORK/gen_$1.rc")" = 0 ] || { cat "$WORK/gen_$1.log"; exit 1; }
    if [ "$SECONDS" -ge "$UNTIL" ]; then stamp "out of time: $* not started"; break; fi
  fi
done
stamp "packing"
# one file per bundle's weights (each under the 16 MiB a file may be when split) and the reports
tar cf - -C "$WORK" bundle reports | split -b 15m - "$OUT/result.tar.part-"
ls -la "$OUT"
stamp "done"
