#!/usr/bin/env bash
# One time-boxed GPU run of the paper's configuration (ResNet-50, batch 32, Adam 1e-3, warm-up then
# linear decay, bf16) for MoS2 twist on 256² patches (6.4 nm at 0.25 Å/px, twice the bundled
# model's field of view), from data generated on the same machine's CPU cores.
#
# Made for a lent accelerator machine with a time limit per command: every stage checks the clock
# (bash's SECONDS), the number of training steps is set from the throughput measured by a short
# real training run, and the results (bundle, evaluation reports, log) are packed into $OUT as a
# tar split in 15 MiB pieces. Knobs (environment): PX, NVAL, NTEST, NPART, PARTS, GEN_UNTIL,
# TRAIN_UNTIL, TTA_UNTIL (seconds since the start), BACKBONE, BATCH, LR, WORKERS, WORK, OUT;
# wheels carried in .whl/ (packages missing on the GPU machine) are installed unless NO_WHEELS=1.
# A tiny CPU rehearsal: NO_WHEELS=1 PX=64 NVAL=32 NTEST=64 NPART=128 PARTS=2 BACKBONE=tiny \
#   GEN_UNTIL=5 TRAIN_UNTIL=60 TTA_UNTIL=120 benchmarks/gpu_twist_resnet50.sh
set -uo pipefail
OUT=${OUT:-$PWD/.gpuout}; WORK=${WORK:-/tmp/sv_gpu}
PX=${PX:-256}; NVAL=${NVAL:-500}; NTEST=${NTEST:-2000}; NPART=${NPART:-16000}; PARTS=${PARTS:-4}
GEN_UNTIL=${GEN_UNTIL:-140}; TRAIN_UNTIL=${TRAIN_UNTIL:-440}; TTA_UNTIL=${TTA_UNTIL:-490}
BACKBONE=${BACKBONE:-resnet50}; BATCH=${BATCH:-32}; LR=${LR:-1e-3}; WORKERS=${WORKERS:-$(nproc)}
NAME=MoS2_twist_bilayer_${BACKBONE}_${PX}
mkdir -p "$OUT" "$WORK"
exec > >(tee -a "$OUT/log.txt") 2>&1
SECONDS=0
stamp() { echo "[$SECONDS s] $*"; }

if [ -z "${NO_WHEELS:-}" ] && compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
SV="python3 -m stackview.cli"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
python3 -c "import torch, numpy; print('torch', torch.__version__, 'numpy', numpy.__version__, \
'cuda', torch.cuda.is_available(), 'cpus', __import__('os').cpu_count())"

COMMON=(--task twist --material MoS2 --positions 16 --sampling 0.25 --patch-px "$PX"
        --style physics --scheduler processes --workers "$WORKERS")
AUG=(--vacancies 0 0.1 --holes 0.15 --masks 0.15 --contamination 0.2 --psnr 10 30
     --noise-probability 0.3)
mkdata() { stamp "dataset $1"; $SV dataset make "$WORK/$1.zarr" "${@:2}" --overwrite | tail -1; }
mkdata val "${COMMON[@]}" "${AUG[@]}" --count "$NVAL" --seed 2002 || exit 1
mkdata test "${COMMON[@]}" "${AUG[@]}" --count "$NTEST" --seed 1001 || exit 1
mkdata clean_test "${COMMON[@]}" --count "$NTEST" --seed 1003 || exit 1
TRAIN=()
for seed in $(seq 1 "$PARTS"); do
  if [ "${#TRAIN[@]}" -gt 0 ] && [ "$SECONDS" -ge "$GEN_UNTIL" ]; then break; fi
  mkdata "train_$seed" "${COMMON[@]}" "${AUG[@]}" --count "$NPART" --seed "$seed" || exit 1
  TRAIN+=("$WORK/train_$seed.zarr")
done
stamp "training data: ${#TRAIN[@]} x $NPART patches"

# the training loop itself (data in memory, prefetch, bf16) on the validation patches, once to
# warm up and once timed: its images/s sets the number of steps that fit before TRAIN_UNTIL
stamp "probe"
RATE=$(python3 - "$WORK/val.zarr" "$BACKBONE" "$BATCH" "$LR" <<'PY' | tail -1
import sys
from stackview.datasets.store import open_dataset
from stackview.inference.regressor import RegressorSpec
from stackview.inference.train import TrainConfig, train
path, backbone, batch, lr = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
source = open_dataset(path).load()
spec = RegressorSpec(backbone=backbone, task="twist", material="MoS2", layers=2,
                     head="invariant")
for steps in (10, 80):
    result = train(spec, source, TrainConfig(steps=steps, batch_size=batch, lr=lr,
                                             precision="bf16", checkpoint_every=0))
print(result.images_per_s)
PY
) || exit 1
LOAD_S=$(( ${#TRAIN[@]} * 4 + 10 ))
STEPS=$(python3 -c "print(max(50, int($RATE * 0.9 * ($TRAIN_UNTIL - $SECONDS - $LOAD_S) / $BATCH)))")
stamp "probe: $RATE images/s -> $STEPS steps"

$SV -v train --dataset "${TRAIN[@]}" --validation "$WORK/val.zarr" \
  --backbone "$BACKBONE" --head invariant --steps "$STEPS" --batch-size "$BATCH" --lr "$LR" \
  --precision bf16 --checkpoint-every 0 --validate-every $(( STEPS / 8 + 1 )) \
  --out "$WORK/bundle/$NAME" \
  --description "MoS2 bilayer twist angle, $BACKBONE on $PX px patches at 0.25 Å/px, trained on a GPU" \
  || exit 1
stamp "trained"
for t in test clean_test; do
  $SV evaluate "$WORK/bundle/$NAME" --dataset "$WORK/$t.zarr" --out "$WORK/reports/$t" \
    --update-card "$t" --device auto
done
if [ "$SECONDS" -lt "$TTA_UNTIL" ]; then
  stamp "views"
  $SV evaluate "$WORK/bundle/$NAME" --dataset "$WORK/clean_test.zarr" --tta \
    --out "$WORK/reports/clean_test_tta" --update-card clean_test_views --device auto
fi
stamp "packing"
tar cf - -C "$WORK" --exclude="*.checkpoints" bundle reports | split -b 15m - "$OUT/result.tar.part-"
ls -la "$OUT"
stamp "done"
