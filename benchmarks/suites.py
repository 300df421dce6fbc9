"""Sample-efficiency suites: envs x algos x real-step budgets x seeds, as frozen records.

Every run of a suite uses its algorithm's preset, the suite's budget as ``--steps`` and the
suite's evaluation overrides, so the algorithms are compared on the same real-step budget and
evaluation protocol.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """An environment of a suite."""

    env_id: str
    """gymnasium id passed to ``--env``."""
    threshold: float | None = None
    """Return that counts as solved (CartPole-v1: 475), or None for no threshold."""
    budgets: tuple[int, ...] = ()
    """This env's real-step budgets; empty: the suite's."""
    overrides: tuple[str, ...] = ()
    """``[ALGO:]key=value`` overrides for this env's runs (``ALGO:`` for one algorithm only),
    e.g. an env option such as MinAtar's frames as images for EfficientZero."""
    label: str = ""
    """How the report names the env (``bsuite DeepSea, size 10``); empty: its id."""

    @property
    def title(self) -> str:
        """The env's name in the report: its label, else its id."""
        return self.label or self.env_id


@dataclasses.dataclass(frozen=True)
class AlgoSpec:
    """An algorithm of a suite and the preset it runs with."""

    algo: str
    """``--algo`` of the CLI: efficientzero, dqn or ppo."""
    preset: str
    """``--preset`` of the CLI."""
    overrides: tuple[str, ...] = ()
    """``key=value`` overrides for this algorithm only."""


@dataclasses.dataclass(frozen=True)
class Suite:
    """Envs x algos x real-step budgets x seeds, with one evaluation protocol for all."""

    name: str
    """Suite name (``--suite``)."""
    envs: tuple[EnvSpec, ...]
    """Environments."""
    algos: tuple[AlgoSpec, ...]
    """Algorithms with their presets."""
    budgets: tuple[int, ...]
    """Real env-step budgets (``--steps`` of each run)."""
    seeds: tuple[int, ...]
    """Seeds of each (env, algo, budget)."""
    overrides: tuple[str, ...] = ()
    """Overrides applied to every run: the shared evaluation protocol."""
    eval_fraction: float | None = None
    """Evaluate every this fraction of each run's budget (``run.eval_every``, every algo);
    None: as ``overrides`` or the presets say."""

    def budgets_of(self, env: EnvSpec) -> tuple[int, ...]:
        """The budgets ``env`` runs at: its own, else the suite's."""
        return env.budgets or self.budgets


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One run of a suite."""

    env: EnvSpec
    algo: AlgoSpec
    budget: int
    seed: int

    def overrides(self, suite: Suite) -> tuple[str, ...]:
        """The run's overrides: the suite's (with its evaluation period), the algorithm's,
        then the env's (an env override ``ALGO:key=value`` only for that algorithm)."""
        common = suite.overrides
        if suite.eval_fraction is not None:
            every = max(1, round(self.budget * suite.eval_fraction))
            common = (*common, f"run.eval_every={every}")
        own = []
        for item in self.env.overrides:
            head, sep, rest = item.partition(":")
            if not (sep and head in ALGOS):
                own.append(item)
            elif head == self.algo.algo:
                own.append(rest)
        return (*common, *self.algo.overrides, *own)

    @property
    def name(self) -> str:
        """Folder and file stem: ``CartPole-v1__dqn__5000__seed0``."""
        return f"{env_slug(self.env.env_id)}__{self.algo.algo}__{self.budget}__seed{self.seed}"


@dataclasses.dataclass(frozen=True)
class Job:
    """One call of the CLI: a single run, or the seeds of one (env, algo, budget) trained
    together in one process (``train --seeds``: seeds vmapped, in the fused loop on a JAX-native
    env, in the host loop otherwise)."""

    runs: tuple[RunSpec, ...]
    """The runs it trains, ``[seeds]`` for a group, one otherwise."""
    group: bool
    """Whether it is a group (a folder ``<name>/seed<k>`` per seed) or a single run (a
    folder ``<name>``)."""

    @property
    def name(self) -> str:
        """Folder name: the run's, or ``CartPole-v1__efficientzero__5000`` for a group."""
        first = self.runs[0]
        if not self.group:
            return first.name
        return f"{env_slug(first.env.env_id)}__{first.algo.algo}__{first.budget}"

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(r.seed for r in self.runs)


def trains_together(env: EnvSpec, algo: AlgoSpec) -> bool:
    """Whether ``algo``'s seeds on ``env`` train in one process, vmapped: EfficientZero's on
    every env but an Atari game (the fused loop on a JAX-native env, the host loop on a
    gymnasium one; an Atari game keeps a process per seed, as ``benchmarks.atari100k`` does
    by default). A group costs far less than its runs one after another: ``train --preset
    default --env CartPole-v1 --steps 1000 --seeds 0-1`` took 165 s against 156 s for
    ``--seed 0`` alone (2-core x86_64 CPU shared with other jobs, jax 0.10.2)."""
    return algo.algo == "efficientzero" and not env.env_id.startswith("ALE/")


def suite_jobs(suite: Suite) -> list[Job]:
    """The CLI calls that train ``suite``: in ``suite_runs`` order, except that the seeds of
    an (env, algo, budget) that trains together are one group, at the place of its first
    seed."""
    jobs: list[Job] = []
    grouped: set[tuple[str, str, int]] = set()
    for spec in suite_runs(suite):
        if not trains_together(spec.env, spec.algo):
            jobs.append(Job((spec,), group=False))
            continue
        key = (spec.env.env_id, spec.algo.algo, spec.budget)
        if key in grouped:
            continue
        grouped.add(key)
        seeds = [dataclasses.replace(spec, seed=k) for k in suite.seeds]
        jobs.append(Job(tuple(seeds), group=True))
    return jobs


def env_slug(env_id: str) -> str:
    """An env id as a file-name part: ``ALE/Pong-v5`` -> ``ALE-Pong-v5``."""
    return env_id.replace("/", "-").replace(":", "-")


def suite_runs(suite: Suite) -> list[RunSpec]:
    """All runs of ``suite``; seeds outermost, so a partial suite has every algo per seed."""
    return [
        RunSpec(env, algo, budget, seed)
        for seed in suite.seeds
        for env in suite.envs
        for budget in suite.budgets_of(env)
        for algo in suite.algos
    ]


ALGOS = ("efficientzero", "dqn", "ppo")
MINATAR_IMAGE = 'efficientzero:env.options={"image": true}'
"""MinAtar's 10x10xC frames as a one-frame uint8 image for EfficientZero's conv trunk (the
baselines' ``cartpole`` presets take them flattened, through their MLP)."""
MINATAR_BUDGET = 20_000
"""Real env steps of the MinAtar suite."""
MINATAR_EVALUATION = ("run.eval_every=2000", "run.eval_episodes=8", "run.final_eval_episodes=16")
"""The MinAtar suites' evaluation protocol (every tenth of the budget)."""


def _three_algos(ez_preset: str = "default") -> tuple[AlgoSpec, ...]:
    return (
        AlgoSpec("efficientzero", ez_preset),
        AlgoSpec("dqn", "cartpole"),
        AlgoSpec("ppo", "cartpole"),
    )


CARTPOLE = EnvSpec("gymnax:CartPole-v1", threshold=475.0, label="CartPole-v1")
"""CartPole-v1 as gymnax ports it: EfficientZero's seeds train in one process (the fused
loop, seeds vmapped), DQN and PPO step it through the gymnasium view."""
DEEP_SEA = EnvSpec(
    "envs.grids:make_deep_sea",
    threshold=0.9,
    budgets=(20_000,),
    overrides=('env.options={"size": 10}',),
    label="DeepSea (bsuite), size 10",
)
"""bsuite DeepSea at size 10 (``envs.grids``): the best return is 0.99, any other at most 0,
so 0.9 means (nearly) every evaluation episode found the treasure."""

SUITES = {
    "cartpole": Suite(
        name="cartpole",
        envs=(CARTPOLE,),
        algos=tuple(AlgoSpec(a, "cartpole") for a in ALGOS),
        budgets=(5_000,),
        seeds=(0, 1, 2),
        overrides=("run.eval_every=500", "run.eval_episodes=8", "run.final_eval_episodes=8"),
    ),
    "atari": Suite(
        name="atari",
        envs=tuple(EnvSpec(f"ALE/{g}-v5") for g in ("Pong", "Breakout", "Boxing")),
        algos=tuple(AlgoSpec(a, "atari100k") for a in ALGOS),
        budgets=(100_000,),
        seeds=(0, 1, 2),
        overrides=("run.eval_every=10000", "run.eval_episodes=8", "run.final_eval_episodes=32"),
    ),
    "classic": Suite(
        name="classic",
        envs=(
            EnvSpec("CartPole-v1", threshold=475.0, budgets=(5_000,)),
            EnvSpec("MountainCar-v0", threshold=-110.0, budgets=(20_000,)),
            EnvSpec("LunarLander-v3", threshold=200.0, budgets=(50_000,)),
            EnvSpec(
                "gymnax:Breakout-MinAtar", budgets=(MINATAR_BUDGET,), overrides=(MINATAR_IMAGE,)
            ),
            DEEP_SEA,
            EnvSpec("envs.examples:make_corridor", budgets=(5_000,), label="corridor, length 8"),
            EnvSpec(
                "envs.grids:make_minigrid",
                budgets=(20_000,),
                overrides=('env.options={"name": "MiniGrid-DoorKey-5x5-v0"}',),
                label="MiniGrid-DoorKey-5x5",
            ),
        ),
        algos=_three_algos(),
        budgets=(20_000,),
        seeds=(0, 1, 2, 3, 4),
        overrides=("run.eval_episodes=8", "run.final_eval_episodes=16"),
        eval_fraction=0.1,
    ),
    "catch": Suite(
        name="catch",
        envs=(EnvSpec("envs.examples:make_catch", threshold=0.8, budgets=(3_000,)),),
        algos=_three_algos(),
        budgets=(3_000,),
        seeds=(0, 1, 2),
        overrides=("run.eval_every=500", "run.eval_episodes=16", "run.final_eval_episodes=32"),
    ),
    "minatar": Suite(
        name="minatar",
        envs=tuple(
            EnvSpec(f"gymnax:{game}-MinAtar", overrides=(MINATAR_IMAGE,))
            for game in ("Breakout", "Freeway")
        ),
        algos=_three_algos(),
        budgets=(MINATAR_BUDGET,),
        seeds=(0, 1, 2, 3, 4),
        overrides=MINATAR_EVALUATION,
    ),
    "minatar_mlp": Suite(
        name="minatar_mlp",
        envs=tuple(EnvSpec(f"gymnax:{game}-MinAtar") for game in ("Breakout", "Freeway")),
        algos=(AlgoSpec("efficientzero", "default"),),
        budgets=(MINATAR_BUDGET,),
        seeds=(0, 1, 2, 3, 4),
        overrides=MINATAR_EVALUATION,
    ),
}
"""Suites by name. Their evaluation overrides repeat the EfficientZero presets' protocol
(``cartpole``: 8 episodes every 500 steps; ``atari100k``: 8 every 10k, 32 at the end) so
that every algorithm is evaluated the same way. EfficientZero's seeds train together
(``suite_jobs``), except on Atari games.

``cartpole`` (``make run``) runs 3 seeds of each algorithm on gymnax's CartPole-v1 with its
``cartpole`` preset, sized for 10 minutes on 2 CPU cores: EfficientZero's 3 seeds in one
fused process; ``atari`` needs a GPU.

``classic`` (``make suite``) is the robustness suite of the ``default`` preset against the
baselines' general presets, 5 seeds, each env at its own budget and evaluated every tenth of
it: CartPole-v1 5k, MountainCar-v0 20k, LunarLander-v3 50k (Box2D, from the ``classic``
extra), MinAtar Breakout 20k (frames as images for EfficientZero), bsuite DeepSea at size 10
20k (``envs.grids:make_deep_sea``; gymnax registers only size 8), the project's corridor 5k,
and MiniGrid-DoorKey-5x5 20k through its 7x7x3 image view (``envs.grids:make_minigrid``,
the ``minigrid`` package of the ``classic`` extra). The gymnax envs run through ``envs.make``
for DQN and PPO and fused for EfficientZero.

``catch`` is the small env of ``envs.examples.make_catch`` (random play about -0.6) at 3k
steps. ``minatar`` runs MinAtar Breakout and Freeway with EfficientZero on the frames as
images (the small-frame conv trunk) against the baselines on flattened frames;
``minatar_mlp`` is EfficientZero on the flattened frames (its MLP trunk), for the comparison
of the two trunks."""


def customize(
    suite: Suite,
    *,
    steps: Sequence[int] | None = None,
    seeds: Sequence[int] | None = None,
    algos: Sequence[str] | None = None,
    envs: Sequence[str] | None = None,
    threshold: float | None = None,
    preset: str | None = None,
    overrides: Sequence[str] = (),
) -> Suite:
    """``suite`` with command-line choices applied; overrides may be ``ALGO:key=value``.

    ``envs`` replaces the suite's environments (the suite then takes its name from them),
    ``threshold`` replaces every env's threshold and ``preset`` every algo's preset.
    """
    chosen = suite.algos
    if algos:
        names = [a.algo for a in suite.algos]
        unknown = set(algos) - set(names)
        if unknown:
            raise ValueError(f"unknown algos {sorted(unknown)}; suite {suite.name!r} has {names}")
        chosen = tuple(a for a in suite.algos if a.algo in algos)
    common = list(suite.overrides)
    per_algo: dict[str, list[str]] = {a.algo: list(a.overrides) for a in chosen}
    for item in overrides:
        head, sep, rest = item.partition(":")
        if sep and head in ALGOS:
            if head in per_algo:  # an override for an algo left out of this suite is dropped
                per_algo[head].append(rest)
        else:
            common.append(item)
    env_specs, name = suite.envs, suite.name
    if envs:
        env_specs = tuple(e for e in suite.envs if e.env_id in envs)
        env_specs += tuple(EnvSpec(e) for e in envs if e not in {s.env_id for s in env_specs})
        if {e.env_id for e in env_specs} != {e.env_id for e in suite.envs}:
            name = "+".join(env_slug(e.env_id) for e in env_specs)
    if threshold is not None:
        env_specs = tuple(dataclasses.replace(e, threshold=threshold) for e in env_specs)
    if steps:  # --steps replaces every env's own budgets
        env_specs = tuple(dataclasses.replace(e, budgets=()) for e in env_specs)
    algo_specs = tuple(
        dataclasses.replace(a, preset=preset or a.preset, overrides=_last_wins(per_algo[a.algo]))
        for a in chosen
    )
    return dataclasses.replace(
        suite,
        name=name,
        envs=env_specs,
        algos=algo_specs,
        budgets=tuple(steps) if steps else suite.budgets,
        seeds=tuple(seeds) if seeds else suite.seeds,
        overrides=_last_wins(common),
    )


def _last_wins(overrides: Sequence[str]) -> tuple[str, ...]:
    """Drops overrides of a key that a later one sets again (the CLI would apply the last)."""
    by_key: dict[str, str] = {}
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        by_key.pop(key, None)
        by_key[key] = item
    return tuple(by_key.values())
