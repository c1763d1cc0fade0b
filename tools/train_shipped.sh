#!/usr/bin/env bash
# Train the models shipped in rgflow/weights (CPU, seeded), two at a time with one thread
# each, then package them with tools/ship_model.py. Wall time: about 45 minutes on 2 uncontended cores.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
STEPS=${STEPS:-800}
COMMON="--preset small --epochs 2 --max-steps $STEPS --test-size 5000 --seed 0 --quiet --checkpoint-minutes 5"
export OMP_NUM_THREADS=1

train() {  # name, then extra arguments
  local name=$1; shift
  $PY -m rgflow train $COMMON --out runs/shipped/$name "$@" > runs/shipped/$name.out 2>&1
}

mkdir -p runs/shipped
$PY -c "from rgflow.data import load_dataset as l; [l(d, s) for d in ('msds1', 'msds2') for s in ('train', 'test')]"
# Two streams of two runs each, one core per stream.
( train msds1-laplace --data msds1 --prior laplace; train msds2-laplace --data msds2 --prior laplace ) &
( train msds1-gaussian --data msds1 --prior gaussian
  train fashion-mnist-laplace --data fashion-mnist --prior laplace ) &
wait
for name in msds1-laplace msds1-gaussian msds2-laplace fashion-mnist-laplace; do
  $PY tools/ship_model.py runs/shipped/$name --name $name
done
# MSDS2 with the Gaussian prior, trained after the others (same settings), for the prior
# comparison on MSDS2.
if [ "${WITH_MSDS2_GAUSSIAN:-1}" = 1 ]; then
  train msds2-gaussian --data msds2 --prior gaussian
  $PY tools/ship_model.py runs/shipped/msds2-gaussian --name msds2-gaussian
fi
