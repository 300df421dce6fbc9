"""Launchers: many runs of the CLI brought to the finished state on an existing engine.

    launcher = make_launcher("ray", gpus_per_run=0.25)
    outcomes = launcher.run(jobs, on_done=write_result)

A ``Job`` is one run, or one group of seeds trained together in one process (``seeds``;
``train --seeds``, their folders ``run_dir/seed<k>``): its name, its folder, its log file and
the ``python -m dreamer train`` arguments that start it. Wherever the engine places it, a job
is ``runs.ensure_run`` (a group: ``runs.ensure_group``): a finished folder is skipped, an
interrupted one resumed (``python -m dreamer resume``), a new one started, so running the same
jobs again continues them. Jobs already finished are skipped here, before anything is sent to
the engine.

* ``LocalLauncher``: subprocesses of this process, ``parallel`` at a time.
* ``RayLauncher``: one Ray task per run, asking for ``gpus_per_run`` GPUs (a fraction lets
  runs share a GPU) and ``cpus_per_run`` CPUs, on the cluster at ``address`` or on a Ray
  started here. A task whose worker dies is retried by Ray, and the retry resumes the run.
* ``SlurmLauncher``: one submitit job array on SLURM (or on submitit's local executor, which
  stands in for SLURM in tests). Each task is a ``ResumableRun``, a checkpointable submitit
  callable: on preemption or timeout submitit calls its ``checkpoint`` and requeues it, the
  training process gets SIGTERM and saves a checkpoint, and the requeued task resumes it.

``run`` calls ``on_done(job, outcome)`` in this process as each run ends, in whatever order
they end, and returns the outcomes in the order of the jobs. A run that fails (its CLI exits
with an error, its worker or job dies) is an outcome with ``finished=False`` naming its log;
the other runs go on. Engines other than the local one need the run folders, logs and source
tree on a file system every node sees, as this process reads the folders afterwards.
"""

from __future__ import annotations

import abc
import concurrent.futures
import dataclasses
import importlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

from benchmarks import runs

LAUNCHERS = ("local", "ray", "slurm")
"""The launchers by name (``--launcher``)."""

SOURCE_ROOT = Path(__file__).resolve().parents[1]
"""The folder holding ``benchmarks`` and ``dreamer``: workers import the code from here."""


@dataclasses.dataclass(frozen=True)
class Job:
    """One run of the CLI to bring to the finished state."""

    name: str
    """Short name for messages, e.g. ``Pong__seed0``."""
    run_dir: Path
    """The run folder (absolute)."""
    train_args: tuple[str, ...]
    """Arguments of ``python -m dreamer`` that start the run (``train ... --out run_dir``)."""
    log: Path
    """File the run's output is appended to, across resumes (absolute)."""
    cwd: Path
    """Working directory of the run (where the benchmark was started)."""
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Variables added to the run's environment."""
    seeds: tuple[int, ...] = ()
    """A group's seeds (``train_args`` hold ``--seeds``); empty for one run."""

    def finished(self) -> bool:
        """Whether the run (every seed of a group) holds its summary."""
        if self.seeds:
            states = runs.group_state(self.run_dir, self.seeds).values()
            return all(state is runs.RunState.FINISHED for state in states)
        return runs.run_state(self.run_dir) is runs.RunState.FINISHED


OnDone = Callable[[Job, runs.Outcome], None]
"""Called in the launching process with each run's outcome as the run ends."""


def make_job(
    name: str,
    run_dir: str | os.PathLike,
    train_args: Sequence[str],
    log: str | os.PathLike,
    seeds: Sequence[int] = (),
) -> Job:
    """A ``Job`` whose paths are absolute and whose workers import this source tree."""
    path = os.pathsep.join(p for p in (str(SOURCE_ROOT), os.environ.get("PYTHONPATH")) if p)
    return Job(
        name=name,
        run_dir=Path(run_dir).absolute(),
        train_args=tuple(train_args),
        log=Path(log).absolute(),
        cwd=Path.cwd(),
        env={"PYTHONPATH": path},
        seeds=tuple(int(k) for k in seeds),
    )


def with_seeds(train_args: Sequence[str], seeds: Sequence[int]) -> list[str]:
    """A group's ``train`` arguments for some of its seeds (those still to start)."""
    args = list(train_args)
    args[args.index("--seeds") + 1] = ",".join(str(k) for k in seeds)
    return args


def run_job(job: Job, *, echo: bool = False) -> runs.Outcome:
    """What a worker does with a job: ``runs.ensure_run`` (a group: ``runs.ensure_group``)
    with the output to the job's log (and here too with ``echo``)."""
    options = {
        "log": job.log,
        "echo": echo,
        "env": job.env,
        "cwd": job.cwd if job.cwd.is_dir() else None,
    }
    if job.seeds:
        start = lambda seeds: with_seeds(job.train_args, seeds)  # noqa: E731
        return runs.ensure_group(job.run_dir, job.seeds, start, **options)
    return runs.ensure_run(job.run_dir, job.train_args, **options)


def failed(job: Job, reason: str) -> runs.Outcome:
    """The outcome of a job its launcher could not run to the end."""
    return runs.Outcome(job.run_dir, "failed", -1, job.finished(), job.log, reason)


def memory_env(share: float) -> dict[str, str]:
    """Environment giving a JAX process ``share`` of each GPU's memory (JAX takes 75% by
    default, so two runs sharing a GPU would not fit); nothing for a whole GPU or more."""
    if not 0 < share < 1:
        return {}
    return {"XLA_PYTHON_CLIENT_MEM_FRACTION": f"{0.9 * share:.3f}"}


def require(module: str, extra: str) -> ModuleType:
    """Imports ``module`` or stops with the command that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise SystemExit(
            f"--launcher {extra} needs the {module} package, which is not installed: "
            f"pip install -e '.[{extra}]' (from the project folder)."
        ) from error


class Launcher(abc.ABC):
    """Runs jobs on one engine; see the module docstring."""

    name: ClassVar[str]

    def run(self, jobs: Sequence[Job], on_done: OnDone | None = None) -> list[runs.Outcome]:
        """Brings every job's run to the finished state; outcomes in the order of ``jobs``."""
        on_done = on_done or (lambda job, outcome: None)
        outcomes: dict[str, runs.Outcome] = {}
        pending = []
        for job in jobs:
            if job.finished():
                outcomes[job.name] = runs.Outcome(job.run_dir, "skipped", 0, True, job.log)
                on_done(job, outcomes[job.name])
            else:
                pending.append(job)
        for job, outcome in self._launch(pending) if pending else ():
            outcomes[job.name] = outcome
            on_done(job, outcome)
        return [outcomes[job.name] for job in jobs]

    @abc.abstractmethod
    def _launch(self, jobs: Sequence[Job]) -> Iterator[tuple[Job, runs.Outcome]]:
        """Runs ``jobs`` (none finished yet), yielding each with its outcome as it ends."""


def _announce(i: int, total: int, job: Job, where: str) -> None:
    print(f"[{i}/{total}] {job.name} {where}: {job.run_dir} (log {job.log})", flush=True)


class LocalLauncher(Launcher):
    """Subprocesses of this process, ``parallel`` at a time.

    One at a time (the default), a run's output is also shown here; with more, each run's
    output goes to its log only, and each run may take ``1 / parallel`` of a GPU's memory.
    """

    name = "local"

    def __init__(self, *, parallel: int = 1):
        if parallel < 1:
            raise ValueError(f"--parallel must be at least 1, got {parallel}")
        self.parallel = parallel

    def _launch(self, jobs: Sequence[Job]) -> Iterator[tuple[Job, runs.Outcome]]:
        if self.parallel == 1:
            for i, job in enumerate(jobs, 1):
                _announce(i, len(jobs), job, "runs here")
                yield job, run_job(job, echo=True)
            return
        extra = memory_env(1.0 / self.parallel)
        pool = concurrent.futures.ThreadPoolExecutor(self.parallel)
        try:
            futures = {}
            for i, job in enumerate(jobs, 1):
                job = dataclasses.replace(job, env={**job.env, **extra})
                _announce(i, len(jobs), job, "queued here")
                futures[pool.submit(run_job, job)] = job
            for future in concurrent.futures.as_completed(futures):
                job = futures[future]
                try:
                    yield job, future.result()
                except Exception as error:  # the launch itself failed (no such folder, ...)
                    yield job, failed(job, f"{type(error).__name__}: {error}")
        finally:  # normally nothing is left; after an interrupt, the runs still going
            pool.shutdown(wait=False, cancel_futures=True)
            runs.stop_all()


class RayLauncher(Launcher):
    """One Ray task per run; see the module docstring.

    Args:
      address: a running Ray cluster (``auto``, ``ray://host:10001``, ...); None starts a
        Ray instance here for the launch and stops it afterwards (one already started in
        this process, as by ``ray.init``, is used as it is).
      gpus_per_run: GPUs per run; a fraction lets ``1 / gpus_per_run`` runs share a GPU
        (each then takes that share of its memory).
      cpus_per_run: CPUs per run.
      parallel: at most this many runs at once (None: as many as the resources allow).
    """

    name = "ray"

    def __init__(
        self,
        *,
        address: str | None = None,
        gpus_per_run: float = 0.0,
        cpus_per_run: float = 1.0,
        parallel: int | None = None,
    ):
        self.address = address
        self.gpus_per_run = gpus_per_run
        self.cpus_per_run = cpus_per_run
        self.parallel = parallel

    def _launch(self, jobs: Sequence[Job]) -> Iterator[tuple[Job, runs.Outcome]]:
        ray = require("ray", "ray")
        started = not ray.is_initialized()
        if started:
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
        gpus = ray.cluster_resources().get("GPU", 0)
        if self.gpus_per_run > gpus:
            have = f"--gpus-per-run {self.gpus_per_run:g} but the Ray cluster has {gpus:g} GPUs"
            if started and self.address is None:  # no node joins a Ray started here
                ray.shutdown()
                raise SystemExit(f"{have}; --gpus-per-run 0 runs on CPUs")
            print(f"warning: {have}: the tasks wait for a node with a GPU to join", flush=True)
        extra = memory_env(self.gpus_per_run)
        task = ray.remote(run_job).options(
            num_gpus=self.gpus_per_run,
            num_cpus=self.cpus_per_run,
            # the task itself imports benchmarks from this tree, as its run does
            runtime_env={"env_vars": {"PYTHONPATH": jobs[0].env.get("PYTHONPATH", "")}},
        )
        queue = list(enumerate(jobs, 1))
        running: dict[Any, Job] = {}
        try:
            while queue or running:
                while queue and len(running) < (self.parallel or len(jobs)):
                    i, job = queue.pop(0)
                    job = dataclasses.replace(job, env={**job.env, **extra})
                    _announce(i, len(jobs), job, "sent to Ray")
                    running[task.remote(job)] = job
                done, _ = ray.wait(list(running), num_returns=1)
                for ref in done:
                    job = running.pop(ref)
                    try:
                        yield job, ray.get(ref)
                    except Exception as error:  # the task died (worker lost, out of memory)
                        lines = [line for line in str(error).splitlines() if line.strip()]
                        yield job, failed(job, f"Ray task failed: {lines[-1] if lines else error}")
        finally:
            for ref in running:  # an interrupt: each task's run gets SIGTERM and saves
                ray.cancel(ref)
            if running:
                ray.wait(list(running), num_returns=len(running), timeout=runs.STOP_GRACE_SECONDS)
            if started:
                ray.shutdown()


@dataclasses.dataclass(frozen=True)
class ResumableRun:
    """A job as a checkpointable submitit callable.

    submitit calls ``checkpoint`` when SLURM preempts the job or its time is nearly up (the
    signal submitit asks SLURM for), then requeues what it returns and exits. The exit
    reaches ``runs.launch`` waiting on the run, which sends the run SIGTERM: the CLI saves a
    checkpoint and stops. The requeued task calls ``run_job`` again, which resumes the run.
    """

    def __call__(self, job: Job) -> runs.Outcome:
        return run_job(job)

    def checkpoint(self, job: Job) -> Any:
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, job)


class SlurmLauncher(Launcher):
    """One submitit job array; see the module docstring.

    Args:
      folder: submitit's folder (its job scripts, pickles and logs).
      partition: SLURM partition (None: the cluster's default).
      time_min: time limit of each job, in minutes; a run that needs longer is requeued
        at the limit and resumes from its checkpoint.
      gpus_per_run: whole GPUs per job.
      cpus_per_run: CPUs per job.
      parallel: at most this many array tasks at once (None: no limit of ours).
      cluster: ``slurm``, or ``local`` for submitit's local executor (tests, smoke runs: every
        job starts at once on this machine).
      options: further submitit SLURM parameters, e.g. ``{"account": "rl", "mem": "32G"}``.
      poll_seconds: how often the jobs' states are checked.
    """

    name = "slurm"

    def __init__(
        self,
        *,
        folder: str | os.PathLike,
        partition: str | None = None,
        time_min: int = 240,
        gpus_per_run: float = 1,
        cpus_per_run: int = 8,
        parallel: int | None = None,
        cluster: str = "slurm",
        options: Mapping[str, str] | None = None,
        poll_seconds: float | None = None,
    ):
        if gpus_per_run != int(gpus_per_run):
            raise ValueError(
                f"--gpus-per-run {gpus_per_run}: SLURM gives whole GPUs; runs share a GPU "
                "with --launcher ray"
            )
        self.folder = Path(folder).absolute()
        self.partition = partition
        self.time_min = time_min
        self.gpus_per_run = int(gpus_per_run)
        self.cpus_per_run = int(cpus_per_run)
        self.parallel = parallel
        self.cluster = cluster
        self.options = dict(options or {})
        self.poll_seconds = poll_seconds or (30.0 if cluster == "slurm" else 1.0)

    def executor(self) -> Any:
        """The submitit executor with this launcher's parameters."""
        submitit = require("submitit", "slurm")
        executor = submitit.AutoExecutor(folder=self.folder, cluster=self.cluster)
        params: dict[str, Any] = {
            "name": "dreamer",
            "timeout_min": self.time_min,
            "nodes": 1,
            "tasks_per_node": 1,
            "gpus_per_node": self.gpus_per_run,
            "cpus_per_task": self.cpus_per_run,
        }
        if self.partition:
            params["slurm_partition"] = self.partition
        if self.parallel:
            params["slurm_array_parallelism"] = self.parallel
        params.update({f"slurm_{key}": value for key, value in self.options.items()})
        executor.update_parameters(**params)
        return executor

    def _launch(self, jobs: Sequence[Job]) -> Iterator[tuple[Job, runs.Outcome]]:
        submitit = require("submitit", "slurm")
        executor = self.executor()
        with executor.batch():  # one job array on SLURM
            submitted = [executor.submit(ResumableRun(), job) for job in jobs]
        by_id = {}
        for i, (job, sjob) in enumerate(zip(jobs, submitted, strict=True), 1):
            _announce(i, len(jobs), job, f"submitted as job {sjob.job_id}")
            by_id[sjob.job_id] = job
        left = set(by_id)
        try:
            for sjob in submitit.helpers.as_completed(submitted, poll_frequency=self.poll_seconds):
                job = by_id[sjob.job_id]
                left.discard(sjob.job_id)
                try:
                    yield job, sjob.result()
                except Exception as error:  # the job failed, was cancelled or ran out of time
                    reason = str(error).strip().splitlines()
                    where = f"submitit log {sjob.paths.stderr}"
                    yield job, failed(job, f"{reason[0] if reason else error}; {where}")
        finally:
            still = [sjob for sjob in submitted if sjob.job_id in left]
            if still and self.cluster == "local":  # this machine's processes: stop them
                for sjob in still:
                    sjob.cancel(check=False)
            elif still:  # SLURM's jobs go on without this process
                ids = " ".join(sjob.job_id for sjob in still)
                print(
                    f"{len(still)} SLURM job(s) still queued or running: {ids}. Once they end, "
                    "rerun the same command to report (finished runs are skipped).",
                    flush=True,
                )


def make_launcher(name: str, **options: Any) -> Launcher:
    """The launcher called ``name`` (``LAUNCHERS``), given the options it takes."""
    classes: dict[str, type[Launcher]] = {
        "local": LocalLauncher,
        "ray": RayLauncher,
        "slurm": SlurmLauncher,
    }
    if name not in classes:
        raise ValueError(f"unknown launcher {name!r}; choose one of {', '.join(LAUNCHERS)}")
    return classes[name](**options)
