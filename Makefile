# Two commands on a fresh machine: `make run` (the CPU-sized default job) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test test-all lint format clean atari100k atari100k-smoke scores gpu-check timing \
	mutation planted-bugs dream suite ablation

$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev,classic]'
	touch $(STAMP)

install: $(STAMP)

# Atari 100k: 26 games x 3 seeds; rerun to continue (finished runs are skipped, others resumed).
# LAUNCHER=ray or LAUNCHER=slurm spreads the runs over a cluster, with LAUNCHER_ARGS such as
# "--gpus-per-run 0.25" or "--partition gpu --time-min 240" (docs/atari.md).
LAUNCHER ?= local
LAUNCHER_ARGS ?=
GAMES ?= all
SEEDS ?= 0,1,2
STEPS ?= 100000
PRESET ?= atari100k
SMOKE_SET := --set search.num_simulations=4 --set replay.batch_size=8 --set replay.capacity=1000 \
	--set replay.reanalyze_simulations=2 --set loop.warmup_steps=100 --set loop.extra_updates=0 --set optim.warmup_updates=10 \
	--set model.channels=16 --set model.lstm_hidden=32 --set model.proj_hidden=64 \
	--set model.proj_out=64 --set model.pred_hidden=32 --set model.dtype=float32 \
	--set env.vectorization=sync --set env.num_eval_envs=1 \
	--set run.eval_every=0 --set run.eval_episodes=1 --set run.final_eval_episodes=1 \
	--set run.log_every=100 --set run.checkpoint_every=150

run: $(STAMP)
	$(PY) -m benchmarks.sample_efficiency --suite cartpole

atari100k: $(STAMP)
	$(PY) -m benchmarks.atari100k --games $(GAMES) --seeds $(SEEDS) --steps $(STEPS) \
		--preset $(PRESET) --out results/atari100k --launcher $(LAUNCHER) $(LAUNCHER_ARGS)

# Two games at a tiny budget on CPU through each launcher: processes here, a local Ray, and a
# job array on submitit's local executor in place of SLURM (results/atari100k-smoke/<launcher>).
SMOKE_LAUNCHERS ?= local ray slurm
atari100k-smoke: $(STAMP)
	for launcher in $(SMOKE_LAUNCHERS); do \
		$(PY) -m benchmarks.atari100k --games Pong,Boxing --seeds 0 --steps 300 \
			--preset atari100k --out results/atari100k-smoke/$$launcher --launcher $$launcher \
			--parallel 2 --gpus-per-run 0 --cpus-per-run 1 --submitit-cluster local \
			$(SMOKE_SET) || exit 1; \
	done

# The whole GPU check of the Atari path (timing of both presets, one complete fast game).
GAME ?= MsPacman
gpu-check: $(STAMP)
	$(PY) -m benchmarks.gpu_check --game $(GAME) --out results/gpu_check

timing: $(STAMP)
	$(PY) -m benchmarks.timing --preset $(PRESET) --env ALE/$(GAME)-v5 --steps 10000

# What dreaming buys: dream ratios against compute-matched controls (CPU-sized; --full: the
# whole sweep). Report in results/dream/report.md.
DREAM_ARGS ?=
dream: $(STAMP)
	$(PY) -m benchmarks.dreaming --out results/dream $(DREAM_ARGS)

# The robustness suite: the default preset against DQN and PPO on classic envs (hours on CPU).
suite: $(STAMP)
	$(PY) -m benchmarks.sample_efficiency --suite classic

# Which robustness mechanisms of the default preset matter: each turned off in turn, on gymnax
# CartPole (5k) and DeepSea size 10 (20k), 5 seeds vmapped per variant (hours on CPU).
# Report in results/ablation/report.md; ABLATION_ARGS="--envs cartpole --seeds 0-2" for less.
ABLATION_ARGS ?=
ablation: $(STAMP)
	$(PY) -m benchmarks.ablation --out results/ablation $(ABLATION_ARGS)

# Published aggregates, and the Atari report rebuilt from the run folders if there are any.
scores: $(STAMP)
	$(PY) -m benchmarks.scores --published all
	-test ! -d results/atari100k/runs || $(PY) -m benchmarks.aggregate results/atari100k

test: $(STAMP)
	$(PY) -m pytest -q

test-all: $(STAMP)
	$(PY) -m pytest -q -m ""

# Mutation testing of the core (not part of `make test`): a fixed sample of mutants per module,
# each run against the tests that cover its module; report in results/mutation/report.md.
# MUTATION_ARGS="--sample all" runs every mutant (hours); see tools/mutation.py.
MUTATION_ARGS ?=
mutation: $(STAMP)
	nice -n 15 $(PY) -m tools.mutation $(MUTATION_ARGS)

# Known bugs, planted one at a time: each must make its tests fail (see tools/planted_bugs.py).
planted-bugs: $(STAMP)
	nice -n 15 $(PY) -m tools.planted_bugs

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache mutants
