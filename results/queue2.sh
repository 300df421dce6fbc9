#!/bin/bash
# Lane 2: the ablation (issue 18). DeepSea's `full` group first: it is also the classic suite's
# EfficientZero DeepSea group (same preset, budget, env option and evaluation; a test checks
# it), so once finished it is copied there and the suite skips it. Then every variant, the
# short CartPole half first. Then issue 19's frontier. Finished runs are skipped, interrupted
# ones resumed (carried across a stop by `python -m tools.carry_checkpoints`).
cd "$(dirname "$0")/.." || exit 1
PY=.venv/bin/python
AB="$PY -m benchmarks.ablation --out results/ablation"
$AB --envs deep_sea --variants full
SUITE=results/classic/runs/envs.grids-make_deep_sea__efficientzero__20000
if [ -f results/ablation/deep_sea/full/seed4/summary.json ] && [ ! -d "$SUITE" ]; then
  mkdir -p results/classic/runs && cp -r results/ablation/deep_sea/full "$SUITE"
fi
$AB
$PY -m benchmarks.dreaming --frontier --out results/frontier
