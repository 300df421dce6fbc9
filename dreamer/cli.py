"""Command line: ``python -m dreamer train | resume | eval | show-config`` (or ``dreamer ...``).

python -m dreamer train --preset cartpole [--algo efficientzero] [--env ID] [--seed N]
                        [--steps N] [--out DIR] [--import MODULE ...] [--set key=value ...]
python -m dreamer resume DIR [--steps N]
python -m dreamer eval DIR [--episodes N] [--stochastic] [--video [--video-format mp4|gif]]
python -m dreamer show-config --preset NAME [--algo ALGO] [--describe] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import json
import os
import signal
import sys
import textwrap
import time
import traceback
from pathlib import Path
from typing import Any

from dreamer.core.configtree import (
    ConfigError,
    apply_overrides,
    flatten,
    from_dict,
    replace_path,
    to_dict,
)
from dreamer.core.errors import (
    EnvOutputError,
    NonFiniteLossError,
    ObservationSpaceError,
    RunFolderError,
)
from dreamer.core.seeds import parse_seeds
from dreamer.loops import algos, groups
from dreamer.shell import runlock
from dreamer.shell.checkpoint import CHECKPOINT_DIR, CheckpointError, latest_checkpoint
from dreamer.shell.compilation import enable_compilation_cache
from dreamer.shell.evaluation import VIDEO_FORMATS, Video
from dreamer.shell.imports import add_working_directory, project_package
from dreamer.shell.runbook import check_can_start
from dreamer.shell.runlog import CONFIG_FILE, SUMMARY_FILE, RunLog, read_json, resume_command
from dreamer.shell.signals import RunStopped, exit_code, signal_name, terminate_as_interrupt


def build_config(args: argparse.Namespace) -> Any:
    """Preset, then --env/--seed/--steps/--import, then --set overrides."""
    project_package("experiments")  # a clash with the user's own package stops here
    from experiments import presets

    cfg = presets.get(args.algo, args.preset)
    if args.env is not None:
        cfg = replace_path(cfg, "env.id", args.env)
    if args.seed is not None:
        cfg = replace_path(cfg, "run.seed", args.seed)
    if args.steps is not None:
        cfg = replace_path(cfg, "run.env_steps", args.steps)
    if args.imports:
        cfg = replace_path(cfg, "env.imports", (*cfg.env.imports, *args.imports))
    listing = f"python -m dreamer show-config --algo {args.algo} --preset {args.preset}"
    return apply_overrides(cfg, args.overrides, show_config=listing)


def default_run_dir(algo: str, cfg: Any) -> Path:
    """cleanrl-style ``runs/env__algo__seed__time``."""
    env = cfg.env.id.replace("/", "-").replace(":", "-")
    return Path("runs") / f"{env}__{algo}__{cfg.run.seed}__{int(time.time())}"


def load_run(run_dir: Path) -> tuple[algos.Algorithm, Any]:
    path = run_dir / CONFIG_FILE
    if not path.exists():
        raise CheckpointError(
            f"{run_dir} is not a run folder (no {CONFIG_FILE}). Pass the folder that "
            "`python -m dreamer train --out DIR` created."
        )
    data = read_json(path)
    algo = algos.get(data["algo"])
    return algo, from_dict(algo.config_cls, data["config"])


def cmd_train(args: argparse.Namespace) -> int:
    cfg = build_config(args)
    algo = algos.get(args.algo)
    run_dir = args.folder = Path(args.out) if args.out else default_run_dir(args.algo, cfg)
    if args.seeds is not None:  # a group: one folder per seed, fused where the env allows
        seeds = parse_seeds(args.seeds)
        groups.print_group(run_dir, groups.train_group(args.algo, cfg, run_dir, seeds))
        return 0
    with runlock.hold(run_dir):  # the folder is checked, created and locked first
        check_can_start(run_dir)
        if (run_dir / CONFIG_FILE).exists():
            print(f"{run_dir} holds a run that stopped before its first checkpoint; starting over.")
        summary = algo.train(cfg, run_dir, resume=False)
    _print_summary(run_dir, summary)
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    run_dir = args.folder = Path(args.run_dir)
    if groups.is_group(run_dir):
        groups.print_group(run_dir, groups.resume_group(run_dir))
        return 0
    algo, cfg = load_run(run_dir)
    with runlock.hold(run_dir):
        if args.steps is not None:
            cfg = _extend(run_dir, algo, cfg, args.steps)
        if (run_dir / SUMMARY_FILE).exists():
            print(
                f"{run_dir} has already finished (run.env_steps={cfg.run.env_steps}); extend "
                f"it with `python -m dreamer resume {run_dir} --steps N`. Its summary:"
            )
            _print_summary(run_dir, read_json(run_dir / SUMMARY_FILE))
            return 0
        resume = latest_checkpoint(run_dir) is not None
        if not resume:
            print(
                f"{run_dir} has no complete checkpoint (the run stopped before its first one): "
                "starting it over from env step 0 with its config.json."
            )
        summary = algo.train(cfg, run_dir, resume=resume)
    _print_summary(run_dir, summary)
    return 0


def _extend(run_dir: Path, algo: algos.Algorithm, cfg: Any, steps: int) -> Any:
    """The run's config with budget ``steps``, written to its config.json; a finished run
    becomes an interrupted one (its summary is dropped, the next one covers the new budget)."""
    if steps < cfg.run.env_steps:
        raise ConfigError(
            f"--steps {steps} is below the run's budget run.env_steps={cfg.run.env_steps}; "
            "resume can only extend a run."
        )
    if steps == cfg.run.env_steps:
        return cfg
    cfg = replace_path(cfg, "run.env_steps", steps)
    (run_dir / SUMMARY_FILE).unlink(missing_ok=True)
    RunLog(run_dir, tensorboard=False).write_config(algo.name, to_dict(cfg))
    print(f"extending {run_dir} to run.env_steps={steps}")
    return cfg


def cmd_eval(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    algo, cfg = load_run(run_dir)
    step = latest_checkpoint(run_dir)
    if step is None:
        raise CheckpointError(
            f"{run_dir} has no complete checkpoint to evaluate yet (the run stopped before "
            f"its first one); `{resume_command(run_dir)}` starts it over."
        )
    where = run_dir / CHECKPOINT_DIR / str(step)
    print(f"evaluating the newest checkpoint of {run_dir}: env step {step} ({where})")
    video = None
    if args.video:
        video = Video(run_dir / "videos" / f"step-{step}", format=args.video_format)
    episodes = args.episodes
    if episodes is None:
        episodes = 1 if video else (cfg.run.final_eval_episodes or cfg.run.eval_episodes)
    returns = algo.evaluate(
        cfg, run_dir, episodes=episodes, video=video, stochastic=args.stochastic
    )
    result = {
        "checkpoint_env_steps": step,
        "policy": "stochastic" if args.stochastic else "greedy",
        "episodes": len(returns),
        "return_mean": round(sum(returns) / len(returns), 4),
        "returns": [round(r, 4) for r in returns],
    }
    if video:
        result["videos"] = [str(p) for p in sorted(video.folder.glob(f"*.{video.format}"))]
    print(json.dumps(result))
    return 0


def cmd_show_config(args: argparse.Namespace) -> int:
    cfg = build_config(args)
    docs = describe(cfg) if args.describe else {}
    for key, value in flatten(cfg).items():
        print(f"{key} = {json.dumps(value, default=list)}")
        if docs.get(key):
            print(f"    {docs[key]}")
    return 0


def describe(cfg: Any, prefix: str = "") -> dict[str, str]:
    """Dotted key -> the field's docstring (one line), for ``show-config --describe``."""
    docs = _field_docs(type(cfg))
    out: dict[str, str] = {}
    for field in dataclasses.fields(cfg):
        value = getattr(cfg, field.name)
        if dataclasses.is_dataclass(value):
            out.update(describe(value, f"{prefix}{field.name}."))
        else:
            out[f"{prefix}{field.name}"] = docs.get(field.name, "")
    return out


def _field_docs(cls: type) -> dict[str, str]:
    """The string literal under each field of a dataclass (its attribute docstring)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):  # no source (e.g. a frozen application)
        return {}
    body = tree.body[0].body
    docs = {}
    for node, after in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = " ".join(after.value.value.split()).replace("``", "`")
    return docs


def _print_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    curve = ", ".join(f"{s}:{r:.1f}" for s, r in summary.get("eval_curve", []))
    final = summary["final_eval_return"]
    final = "none (run.final_eval_episodes=0)" if final is None else f"{final:.2f}"
    best = summary.get("best_eval_return")
    print(
        f"\nrun folder: {run_dir}\n"
        f"env steps {summary['env_steps']}, updates {summary['updates']}, "
        f"wall {summary['wall_seconds']:.0f}s\n"
        f"final eval return {final} (best {'-' if best is None else f'{best:.2f}'}); "
        f"eval curve [{curve}]"
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dreamer", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    def add_config_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--preset", required=True, help="preset name, e.g. cartpole, atari100k")
        sp.add_argument("--algo", default="efficientzero", choices=algos.NAMES)
        sp.add_argument("--env", help="gymnasium id, package.module:factory, or a registered name")
        sp.add_argument("--seed", type=int)
        sp.add_argument("--steps", type=int, help="real environment steps (run.env_steps)")
        sp.add_argument(
            "--import",
            dest="imports",
            action="append",
            default=[],
            metavar="MODULE",
            help="import MODULE first, e.g. one that registers env names (env.imports; "
            "recorded in config.json, so eval and resume import it again)",
        )
        sp.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override any config field, e.g. --set search.num_simulations=16 or "
            """--set 'env.options={"size": 4}' (values are JSON)""",
        )

    train = sub.add_parser("train", help="start a run")
    add_config_args(train)
    train.add_argument("--out", help="run folder (default runs/env__algo__seed__time)")
    train.add_argument(
        "--seeds",
        help="several seeds, 0,1,2 or 0-9: one run folder each, OUT/seed<k>; EfficientZero "
        "trains them together in one process, vmapped (fused on a JAX-native env such as "
        "gymnax:<id>, in the host loop on any other)",
    )
    train.set_defaults(func=cmd_train)

    resume = sub.add_parser("resume", help="continue a run from its newest checkpoint")
    resume.add_argument("run_dir")
    resume.add_argument(
        "--steps", type=int, help="extend the run (finished or not) to this many env steps"
    )
    resume.set_defaults(func=cmd_resume)

    evaluate = sub.add_parser("eval", help="greedy evaluation of a run's newest checkpoint")
    evaluate.add_argument("run_dir")
    evaluate.add_argument(
        "--episodes",
        type=_positive_int,
        help="episodes to play (default run.final_eval_episodes; 1 with --video)",
    )
    evaluate.add_argument(
        "--video",
        action="store_true",
        help="record each episode to DIR/videos/step-N/episode-K.mp4 (the env must support "
        'render_mode="rgb_array")',
    )
    evaluate.add_argument("--video-format", default="mp4", choices=VIDEO_FORMATS)
    evaluate.add_argument(
        "--stochastic",
        action="store_true",
        help="play the policy as it acts in training at that checkpoint, exploration on "
        "(EfficientZero: the search with its noise and temperature; DQN: its epsilon; PPO: "
        "sampled actions), not greedily: a policy that acts well only this way is stuck "
        "greedily (a loop, a tie), not untrained",
    )
    evaluate.set_defaults(func=cmd_eval)

    show = sub.add_parser("show-config", help="print every config key of a preset")
    add_config_args(show)
    show.add_argument("--describe", action="store_true", help="also print what each key means")
    show.set_defaults(func=cmd_show_config)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    enable_compilation_cache()
    try:
        with terminate_as_interrupt():
            return args.func(args)
    except RunStopped as stop:  # a signal: the loop saved a checkpoint and stopped
        print(f"dreamer: {stop}", file=sys.stderr)
        return exit_code(stop.signum)
    except KeyboardInterrupt as interrupt:  # Ctrl-C, or a signal outside the loop
        signum = getattr(interrupt, "signum", signal.SIGINT)
        print(f"dreamer: {_interrupted(getattr(args, 'folder', None), signum)}", file=sys.stderr)
        return exit_code(signum)
    except (
        ConfigError,
        CheckpointError,
        NonFiniteLossError,
        ObservationSpaceError,
        RunFolderError,
        EnvOutputError,
    ) as e:
        print(f"dreamer: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `show-config | head`: the reader has gone, say nothing
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as e:  # a file that cannot be read or written (missing, disk full, ...)
        where = f"{e.filename}: " if e.filename else ""
        folder = getattr(args, "folder", None)
        fix = f" Once fixed, continue with `{resume_command(folder)}`." if folder else ""
        print(f"dreamer: error: {where}{e.strerror or e}.{fix}", file=sys.stderr)
        return 2
    except Exception as e:
        if type(e).__name__ != "EnvFactoryError":  # envs.EnvFactoryError (envs is imported late)
            raise
        traceback.print_exception(e.__cause__, file=sys.stderr)  # the user's code raised
        print(f"dreamer: error: {e} (its traceback is above).", file=sys.stderr)
        return 2


def _interrupted(run_dir: Path | None, signum: int) -> str:
    """One line for a stop without a new checkpoint: what was kept and how to go on."""
    stopped = f"stopped by {signal_name(signum)}"
    if run_dir is not None and groups.is_group(run_dir):
        started = [f for f in sorted(run_dir.glob("seed*")) if (f / CONFIG_FILE).exists()]
        latest = {f.name: latest_checkpoint(f) for f in started}
        if not latest:
            return f"{stopped}; no run was started."
        if all(step is None for step in latest.values()):
            return (
                f"{stopped} before the group's first checkpoint; `{resume_command(run_dir)}` "
                "starts it over."
            )
        kept = ", ".join(f"{name}: {step}" for name, step in latest.items() if step is not None)
        return (
            f"{stopped}; the seeds' checkpoints (env steps {kept}) in {run_dir} are kept. "
            f"Continue with `{resume_command(run_dir)}`."
        )
    if run_dir is None or not (run_dir / CONFIG_FILE).exists():
        return f"{stopped}; no run was started."
    latest = latest_checkpoint(run_dir)
    if latest is None:
        return (
            f"{stopped} before the run's first checkpoint; `{resume_command(run_dir)}` starts "
            "it over."
        )
    return (
        f"{stopped}; the checkpoint at env step {latest} in {run_dir} is kept. Continue with "
        f"`{resume_command(run_dir)}`."
    )


def console_main() -> int:
    """The ``dreamer`` console script: like ``python -m dreamer``, it can import modules of
    the current folder (``--env my_pkg.my_envs:make_grid`` from the folder holding my_pkg)."""
    add_working_directory()
    return main()
