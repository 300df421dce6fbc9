#!/bin/bash
# Lane 1: the classic suite (issue 18), baselines first, then EfficientZero env by env,
# cheapest first; the short README benchmarks (`make run`, catch) before the long envs, so a
# session's end cuts as little as possible. Then issue 19's MinAtar dream table: the dream
# ratios first, their compute-matched controls after. Every step skips finished runs and
# resumes interrupted ones (carried across a stop by `python -m tools.carry_checkpoints`).
cd "$(dirname "$0")/.." || exit 1
PY=.venv/bin/python
SE="$PY -m benchmarks.sample_efficiency --suite classic --out results/classic"
$SE --algos dqn,ppo
for env in CartPole-v1 envs.examples:make_corridor; do
  $SE --algos efficientzero --envs "$env"
done
$PY -m benchmarks.sample_efficiency --suite cartpole --out results/sample_efficiency/cartpole
$PY -m benchmarks.sample_efficiency --suite catch --out results/catch
for preset in default cartpole; do  # README: 10 seeds of each preset at 5k (fused loop)
  out=results/cartpole_$preset/after
  [ "$preset" = cartpole ] && out=results/cartpole_preset/after
  [ -f "$out/fused.json" ] || $PY -m benchmarks.seeds --preset $preset --paths fused \
    --seeds 0-9 --set run.env_steps=5000 --out "$out"
done
for env in MountainCar-v0 envs.grids:make_minigrid LunarLander-v3 gymnax:Breakout-MinAtar; do
  $SE --algos efficientzero --envs "$env"
done
$SE --report-only
DM="$PY -m benchmarks.dreaming --envs minatar-breakout --ratios 0,1,4 --out results/dream_minatar"
$DM --no-controls
$DM
