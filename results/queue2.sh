#!/bin/bash
# Lane 2: the DeepSea half of the ablation (issue 18); its `full` group is the classic
# suite's EfficientZero DeepSea group, copied there once finished.
cd "$(dirname "$0")/.." || exit 1
PY=.venv/bin/python
$PY -m benchmarks.ablation --envs deep_sea --out results/ablation
