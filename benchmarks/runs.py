"""Run folders of the ``python -m dreamer`` CLI: their state, launching runs, reading results.

A run folder holds ``config.json`` from the start, ``metrics.csv`` rows as it goes and
``summary.json`` once finished. A folder with ``config.json`` but no ``summary.json`` was
interrupted and is continued with ``python -m dreamer resume DIR``.

Benchmarks start runs only through ``launch`` (tests replace it), and read run folders only
through the functions here. Before a folder's run is skipped or resumed, its recorded config
is checked against the one asked for (``check_same_run``).
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import enum
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from dreamer.loops.groups import GROUP_FILE, is_group, seed_folder
from dreamer.shell.checkpoint import latest_checkpoint
from dreamer.shell.runlog import CONFIG_FILE, EVAL_RETURN, METRICS_FILE, SUMMARY_FILE
from dreamer.shell.signals import exit_code, signal_name, terminate_as_interrupt


class RunState(enum.Enum):
    """Where a run folder stands."""

    NEW = "new"
    """No ``config.json``: the run has not started (the folder may not exist)."""
    INTERRUPTED = "interrupted"
    """``config.json`` but no ``summary.json``: continue with ``dreamer resume``."""
    FINISHED = "finished"
    """``summary.json`` exists."""


def run_state(run_dir: str | os.PathLike) -> RunState:
    """The state of ``run_dir`` from the files it holds."""
    run_dir = Path(run_dir)
    if (run_dir / SUMMARY_FILE).is_file():
        return RunState.FINISHED
    if (run_dir / CONFIG_FILE).is_file():
        return RunState.INTERRUPTED
    return RunState.NEW


STOP_GRACE_SECONDS = 120.0
"""How long a stopped run gets to save its checkpoint and exit before it is killed."""


def launch(
    args: Sequence[str],
    *,
    log: str | os.PathLike | None = None,
    echo: bool = True,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike | None = None,
) -> int:
    """Runs ``python -m dreamer ARGS`` with this interpreter; returns its exit code.

    Its output goes to this process's stdout and stderr, or, with ``log``, is appended to
    that file (and copied to stdout when ``echo``). ``env`` adds variables to the child's
    environment; ``cwd`` is its working directory.

    The child runs in a session of its own, so a stop meant for this process (Ctrl-C, a
    scheduler's SIGTERM or preemption signal, a cancelled task) reaches it only from here:
    whatever exception interrupts the wait, the child gets one SIGTERM, saves a checkpoint at
    its next step and exits (killed after ``STOP_GRACE_SECONDS``), then the exception goes on.
    """
    cmd = [sys.executable, "-m", "dreamer", *args]
    print(f"$ {shlex.join(cmd)}", flush=True)
    child_env = {**os.environ, **env} if env else None
    if log is None:
        proc = subprocess.Popen(cmd, env=child_env, cwd=cwd, start_new_session=True)
        return _wait(proc)
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as sink:
        host = f"{socket.gethostname()}, pid {os.getpid()}, {time.strftime('%F %T')}"
        sink.write(f"$ {shlex.join(cmd)}  # {host}\n".encode())
        sink.flush()
        proc = subprocess.Popen(
            cmd,
            env=child_env,
            cwd=cwd,
            stdout=subprocess.PIPE if echo else sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return _wait(proc, sink if echo else None)


_running: set[subprocess.Popen] = set()
"""Children of ``launch`` still waited on (by any thread), for ``stop_all``."""


def stop_all() -> None:
    """One SIGTERM to every run this process launched that still runs, then waits for them
    (threads waiting on runs do not see the main thread's interrupt)."""
    procs = [p for p in list(_running) if p.poll() is None]
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for proc in procs:
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 0.0))
        except subprocess.TimeoutExpired:
            proc.kill()


def benchmark_main(main: Callable[[], int]) -> int:
    """Calls a benchmark's ``main`` so that a stop reaches the runs it launched.

    Python ends a process on SIGTERM without running any handler, which would leave the
    benchmark's runs (each in a session of its own) training with nobody waiting for them.
    Here SIGTERM raises ``Interrupted`` as Ctrl-C raises ``KeyboardInterrupt``; either reaches
    ``launch``'s wait, which stops its run with one SIGTERM (the run saves a checkpoint). The
    exit code is then 128 + the signal's number, as a shell reports a process it killed.
    """
    try:
        with terminate_as_interrupt():
            return main()
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        print(
            f"\nStopped by {signal_name(signum)}; the runs it started saved their "
            "checkpoints. Rerun the same command to continue them.",
            file=sys.stderr,
            flush=True,
        )
        return exit_code(signum)


def _wait(proc: subprocess.Popen, tee: BinaryIO | None = None) -> int:
    """Waits for ``proc`` (copying its piped output to ``tee`` and stdout); stops it on any
    exception."""
    _running.add(proc)
    try:
        if tee is not None:
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            for chunk in iter(lambda: os.read(proc.stdout.fileno(), 65536), b""):
                tee.write(chunk)
                tee.flush()
                sys.stdout.write(decoder.decode(chunk))
                sys.stdout.flush()
        return proc.wait()
    except BaseException:
        stop(proc, tee)
        raise
    finally:
        _running.discard(proc)


def stop(proc: subprocess.Popen, sink: BinaryIO | None = None) -> None:
    """One SIGTERM to a running ``proc`` (the CLI saves a checkpoint and exits), then wait."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        output, _ = proc.communicate(timeout=STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
    if output and sink is not None:
        sink.write(output)
        sink.flush()


def train_args(
    *,
    algo: str,
    preset: str,
    env_id: str,
    seed: int | Sequence[int],
    steps: int,
    out: str | os.PathLike,
    overrides: Sequence[str] = (),
) -> list[str]:
    """Arguments of ``python -m dreamer train`` for one run, or for a group of runs
    (``--seeds 0,1,2``: one folder ``OUT/seed<k>`` per seed) when ``seed`` is a sequence."""
    args = ["train", "--algo", algo, "--preset", preset, "--env", env_id]
    if isinstance(seed, int):
        args += ["--seed", str(seed)]
    else:
        args += ["--seeds", ",".join(str(k) for k in seed)]
    args += ["--steps", str(steps), "--out", str(out)]
    for item in overrides:
        args += ["--set", item]
    return args


class RunMismatchError(ValueError):
    """A run folder holds another run than the one a benchmark asks for."""


def config_mismatch(run_dir: str | os.PathLike, train: Sequence[str]) -> str | None:
    """How the run stored in ``run_dir`` differs from the one the ``train`` args ask for, or
    None when they are the same run (or the folder holds none yet).

    Every setting the folder's ``config.json`` records is compared with the config the args
    give, both as a run uses them: EfficientZero's replay sized to the budget
    (``sized_to_budget``; a run made before that sizing allocated more slots than its budget
    fills, which changes no setting of the experiment). The seed is the folder's own (a
    group's seed folder). A setting added to the configs after the run was made is not in its
    file and not compared."""
    from dreamer import cli
    from dreamer.core.configtree import from_dict, replace_path
    from dreamer.loops import algos

    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).exists():
        return None
    stored = read_json(run_dir / CONFIG_FILE)
    args = cli.parser().parse_args(list(train))
    if stored.get("algo") != args.algo:
        return f"it holds a run of {stored.get('algo')}, not of {args.algo}"
    recorded = _flat(stored.get("config", {}))
    try:
        kept = from_dict(algos.get(args.algo).config_cls, stored.get("config", {}))
    except (TypeError, ValueError, KeyError) as exc:
        return f"its {CONFIG_FILE} is not a config of this version ({exc})"
    wanted = cli.build_config(args)
    if "run.seed" in recorded:
        wanted = replace_path(wanted, "run.seed", recorded["run.seed"])

    def used(cfg: Any) -> dict[str, Any]:
        sized = cfg.sized_to_budget() if hasattr(cfg, "sized_to_budget") else cfg
        return _flat(json.loads(json.dumps(dataclasses.asdict(sized), default=str)))

    have, want = used(kept), used(wanted)
    differ = [k for k in sorted(recorded) if have.get(k) != want.get(k)]
    if not differ:
        return None
    shown = ", ".join(f"{k}={have.get(k)!r} (asked {want.get(k)!r})" for k in differ[:4])
    return f"it holds another run: {shown}" + (" ..." if len(differ) > 4 else "")


def check_same_run(run_dir: str | os.PathLike, train: Sequence[str]) -> None:
    """Raises ``RunMismatchError`` when ``run_dir`` holds another run than ``train`` asks
    for: skipped or resumed, its numbers would be reported under this run's name."""
    why = config_mismatch(run_dir, train)
    if why is not None:
        raise RunMismatchError(
            f"{run_dir}: {why}. Give this benchmark its own --out, or move that folder away "
            "(nothing was changed in it)."
        )


def _flat(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (an empty mapping stays a value)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What ``ensure_run`` did for one run folder."""

    run_dir: Path
    """The run folder."""
    action: str
    """``skipped`` (already finished), ``resumed`` or ``trained``."""
    returncode: int
    """Exit code of the CLI (0 when skipped)."""
    finished: bool
    """Whether the folder holds ``summary.json`` afterwards."""
    log: Path | None = None
    """The file holding the run's output (None: it went to the terminal)."""
    error: str = ""
    """Why the run could not be run at all (a launcher's failure), if it could not."""


def ensure_run(
    run_dir: str | os.PathLike,
    train: Sequence[str],
    *,
    log: str | os.PathLike | None = None,
    echo: bool = True,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike | None = None,
) -> Outcome:
    """Brings ``run_dir`` to the finished state: skip, resume or start it with ``train`` args.

    ``log``, ``echo``, ``env`` and ``cwd`` go to ``launch``.
    """
    run_dir = Path(run_dir)
    log = Path(log) if log is not None else None
    check_same_run(run_dir, train)
    state = run_state(run_dir)
    if state is RunState.FINISHED:
        return Outcome(run_dir, "skipped", 0, True, log)
    options = {"log": log, "echo": echo, "env": env, "cwd": cwd}
    if state is RunState.INTERRUPTED:
        action, code = "resumed", launch(["resume", str(run_dir)], **options)
    else:
        action, code = "trained", launch(list(train), **options)
    return Outcome(run_dir, action, code, run_state(run_dir) is RunState.FINISHED, log)


def group_state(group_dir: str | os.PathLike, seeds: Sequence[int]) -> dict[int, RunState]:
    """The state of each seed's folder ``group_dir/seed<k>`` of a group (``train --seeds``)."""
    return {k: run_state(seed_folder(group_dir, k)) for k in seeds}


def ensure_group(
    group_dir: str | os.PathLike,
    seeds: Sequence[int],
    train: Callable[[Sequence[int]], Sequence[str]],
    *,
    log: str | os.PathLike | None = None,
    echo: bool = True,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike | None = None,
) -> Outcome:
    """Brings the seeds' folders ``group_dir/seed<k>`` to the finished state.

    Seeds that stopped after a checkpoint are resumed (``resume GROUP_DIR`` continues the
    seeds of the group's record together; a seed the record does not hold is resumed alone);
    seeds not started, or stopped before their first checkpoint, are trained together with the
    arguments ``train(those seeds)``. Launching stops at the first failure. ``log``,
    ``echo``, ``env`` and ``cwd`` go to ``launch``.
    """
    group_dir = Path(group_dir)
    log = Path(log) if log is not None else None
    options = {"log": log, "echo": echo, "env": env, "cwd": cwd}
    asked = train(list(seeds))
    for k in seeds:
        check_same_run(seed_folder(group_dir, k), asked)

    def waiting(*, checkpointed: bool) -> list[int]:
        """Unfinished seeds with (or without) a checkpoint to resume from."""
        return [
            k
            for k, state in group_state(group_dir, seeds).items()
            if state is not RunState.FINISHED
            and (latest_checkpoint(seed_folder(group_dir, k)) is not None) == checkpointed
        ]

    code, actions = 0, []
    recorded = _recorded_seeds(group_dir) if is_group(group_dir) else []
    if set(waiting(checkpointed=True)) & set(recorded):
        code = launch(["resume", str(group_dir)], **options)
        actions.append("resumed")
    for k in waiting(checkpointed=True) if code == 0 else []:
        code = launch(["resume", str(seed_folder(group_dir, k))], **options)
        actions.append("resumed")
        if code:
            break
    fresh = waiting(checkpointed=False)
    if fresh and code == 0:
        code = launch(list(train(fresh)), **options)
        actions.append("trained")
    finished = all(s is RunState.FINISHED for s in group_state(group_dir, seeds).values())
    action = ", ".join(dict.fromkeys(actions)) or "skipped"
    return Outcome(group_dir, action, code, finished, log)


def _recorded_seeds(group_dir: Path) -> list[int]:
    """The seeds of the group's record (``group.json``), the last group trained there."""
    return [int(k) for k in read_json(group_dir / GROUP_FILE).get("seeds", [])]


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    """A JSON file as a dict."""
    with open(path) as f:
        return json.load(f)


def write_json(path: str | os.PathLike, data: Mapping[str, Any]) -> None:
    """Writes ``data`` atomically (a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of ``metrics.csv`` (empty list if there is none)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def eval_curve(run_dir: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Evaluation curve ``(env_steps [T], mean_return [T])`` of a run, sorted by steps.

    Taken from ``summary.json``'s ``eval_curve`` when the run has finished, otherwise from
    the rows of ``metrics.csv`` that have an ``eval/return_mean``.
    """
    run_dir = Path(run_dir)
    points: list[tuple[float, float]] = []
    if (run_dir / SUMMARY_FILE).is_file():
        summary_curve = read_json(run_dir / SUMMARY_FILE).get("eval_curve") or []
        points = [(float(s), float(r)) for s, r in summary_curve]
    if not points:
        for row in read_metrics(run_dir):
            value = (row.get(EVAL_RETURN) or "").strip()
            if value:
                points.append((float(row["env_steps"]), float(value)))
    if not points:
        return np.zeros(0), np.zeros(0)
    steps, returns = np.array(sorted(points)).T
    return steps, returns


def result_record(run_dir: str | os.PathLike, **identity: Any) -> dict[str, Any]:
    """The per-run result JSON of a finished run: ``identity`` fields, then the summary's.

    Fields: ``eval_returns`` (per-episode returns of the last evaluation), ``final_eval_return``
    (their mean), ``best_eval_return``, ``eval_curve``, ``env_steps``, ``updates``,
    ``wall_seconds``, ``steps_per_second``, ``algo``, ``env_id``, ``config``, ``versions``,
    ``device`` and ``run_dir``.
    """
    run_dir = Path(run_dir)
    summary = read_json(run_dir / SUMMARY_FILE)
    config = summary.get("config")
    if config is None and (run_dir / CONFIG_FILE).is_file():
        config = read_json(run_dir / CONFIG_FILE).get("config")
    wall = float(summary["wall_seconds"])
    env_steps = int(summary["env_steps"])
    return {
        **identity,
        "algo": summary.get("algo"),
        "env_id": summary.get("env_id"),
        "eval_returns": [float(r) for r in summary.get("final_eval_returns", [])],
        "final_eval_return": float(summary["final_eval_return"]),
        "best_eval_return": summary.get("best_eval_return"),
        "eval_curve": np.stack(eval_curve(run_dir), axis=-1).tolist(),
        "env_steps": env_steps,
        "updates": int(summary["updates"]),
        "wall_seconds": wall,
        "steps_per_second": env_steps / wall if wall > 0 else None,
        "config": config,
        "versions": summary.get("versions", {}),
        "device": summary.get("device"),
        "run_dir": str(run_dir),
    }
