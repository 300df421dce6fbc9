"""``benchmarks.launchers``: real CLI runs (DQN, ``debug`` preset: 200 CartPole steps, a few
seconds each) through each engine on CPU: processes here, a local Ray instance, and
submitit's local executor standing in for SLURM. A run killed with SIGKILL (past its first
checkpoint) is resumed by the next launch; a preempted submitit task is requeued and resumes
its run; a failing run is reported with its log while the others finish; a second launch
skips every finished run."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from benchmarks import atari100k, launchers, runs

ROOT = Path(__file__).resolve().parents[1]

# Runs the CLI and SIGKILLs itself right after logging env step 150: past the checkpoint at
# 100, before the end at 200.
KILLED_AT_150 = """
import os, signal, sys
from dreamer import cli
from dreamer.shell import runlog
log = runlog.RunLog.log
def log_then_die(self, row):
    log(self, row)
    if int(row["env_steps"]) >= 150:
        os.kill(os.getpid(), signal.SIGKILL)
runlog.RunLog.log = log_then_die
sys.exit(cli.main(sys.argv[1:]))
"""


def job(tmp_path: Path, name: str, *extra: str, seed: int = 0) -> launchers.Job:
    run_dir = tmp_path / "runs" / name
    args = ["train", "--algo", "dqn", "--preset", "debug", "--seed", str(seed)]
    args += ["--out", str(run_dir), "--set", "run.progress=false", *extra]
    return launchers.make_job(name, run_dir, args, tmp_path / "logs" / f"{name}.log")


def killed_job(tmp_path: Path, name: str) -> launchers.Job:
    """A job whose run was killed at env step 150, after its checkpoint at 100."""
    interrupted = job(tmp_path, name, seed=1)
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_AT_150, *interrupted.train_args],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert runs.run_state(interrupted.run_dir) is runs.RunState.INTERRUPTED
    return interrupted


def env_steps(j: launchers.Job) -> int:
    return json.loads((j.run_dir / "summary.json").read_text())["env_steps"]


def launch_twice(launcher: launchers.Launcher, jobs: list[launchers.Job]):
    """Outcomes of a launch and of the same launch again, and the on_done calls of the first."""
    ended: list[tuple[str, str]] = []
    first = launcher.run(jobs, on_done=lambda j, o: ended.append((j.name, o.action)))
    again = launcher.run(jobs)
    return first, again, ended


# ------------------------------------------------------------------------------------------
# Without an engine


def test_a_missing_engine_names_the_extra_to_install(monkeypatch):
    def no_ray(name):
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(launchers.importlib, "import_module", no_ray)
    with pytest.raises(SystemExit, match=re.escape("pip install -e '.[ray]'")):
        launchers.require("ray", "ray")
    with pytest.raises(SystemExit, match=re.escape("pip install -e '.[slurm]'")):
        launchers.require("submitit", "slurm")


def test_the_command_line_picks_and_configures_each_launcher(tmp_path):
    def launcher(*argv):
        parser = argparse.ArgumentParser()
        atari100k.add_launcher_arguments(parser)
        return atari100k.launcher_from_arguments(parser.parse_args(argv), tmp_path)

    local = launcher("--parallel", "3")
    assert isinstance(local, launchers.LocalLauncher) and local.parallel == 3
    ray = launcher("--launcher", "ray", "--gpus-per-run", "0.25", "--ray-address", "auto")
    assert (ray.address, ray.gpus_per_run, ray.cpus_per_run) == ("auto", 0.25, 4)
    slurm = launcher(
        "--launcher", "slurm", "--partition", "gpu", "--time-min", "90",
        "--slurm-option", "account=rl", "--parallel", "8", "--submitit-cluster", "local",
    )  # fmt: skip
    assert (slurm.partition, slurm.time_min, slurm.parallel) == ("gpu", 90, 8)
    assert slurm.options == {"account": "rl"} and slurm.cluster == "local"
    assert slurm.folder == (tmp_path / "submitit").absolute()
    with pytest.raises(ValueError, match="whole GPUs"):
        launcher("--launcher", "slurm", "--gpus-per-run", "0.5")
    assert launchers.memory_env(0.25) == {"XLA_PYTHON_CLIENT_MEM_FRACTION": "0.225"}
    assert launchers.memory_env(1.0) == {} == launchers.memory_env(0.0)


def test_a_stopped_launch_sends_its_run_one_sigterm_and_waits_for_it(tmp_path):
    """An exception while waiting (here an alarm, as Ctrl-C or submitit's requeue would)
    reaches the child, in a session of its own, as one SIGTERM; it gets to finish."""
    record = tmp_path / "signals"
    child = (
        "import signal, sys, time\n"
        f"def term(*_):\n    open({str(record)!r}, 'a').write('TERM\\n'); time.sleep(0.3); "
        "sys.exit(143)\n"
        "signal.signal(signal.SIGTERM, term)\n"
        f"open({str(record)!r}, 'a').write('ready\\n')\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", child], start_new_session=True)
    while not record.exists():
        time.sleep(0.02)

    def alarm(*_):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    try:
        with pytest.raises(KeyboardInterrupt):
            runs._wait(proc)
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert proc.returncode == 143 and record.read_text() == "ready\nTERM\n"
    assert not runs._running


def test_a_benchmark_stopped_by_sigterm_stops_its_run_first(tmp_path):
    """Python ends a process on SIGTERM without a handler; a benchmark's ``main`` runs under
    ``benchmark_main``, so the signal reaches the wait on its run, which stops the run."""
    record = tmp_path / "signals"
    child = (
        "import signal, sys, time\n"
        f"def term(*_):\n    open({str(record)!r}, 'a').write('TERM\\n'); sys.exit(143)\n"
        "signal.signal(signal.SIGTERM, term)\n"
        f"open({str(record)!r}, 'a').write('ready\\n')\n"
        "time.sleep(60)\n"
    )
    bench = (
        "import subprocess, sys\n"
        "from benchmarks import runs\n"
        "def main():\n"
        f"    proc = subprocess.Popen([sys.executable, '-c', {child!r}], start_new_session=True)\n"
        "    return runs._wait(proc)\n"
        "sys.exit(runs.benchmark_main(main))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", bench], stderr=subprocess.PIPE, text=True, cwd=Path.cwd()
    )
    deadline = time.monotonic() + 60
    while not record.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "Stopped by SIGTERM" in err
    assert record.read_text() == "ready\nTERM\n"


def test_resumable_run_requeues_itself_with_the_same_job(tmp_path):
    pytest.importorskip("submitit")
    j = job(tmp_path, "a")
    delayed = launchers.ResumableRun().checkpoint(j)
    assert isinstance(delayed.function, launchers.ResumableRun) and delayed.args == (j,)


# ------------------------------------------------------------------------------------------
# Real runs through each engine


def test_local_launcher_runs_in_parallel_reports_a_failure_and_skips_on_rerun(tmp_path):
    good = job(tmp_path, "good")
    bad = job(tmp_path, "bad", "--env", "CartPoel-v1")  # the CLI stops: unknown env id
    first, again, ended = launch_twice(launchers.LocalLauncher(parallel=2), [good, bad])
    assert [(o.action, o.finished) for o in first] == [("trained", True), ("trained", False)]
    assert sorted(ended) == [("bad", "trained"), ("good", "trained")]
    assert first[1].returncode != 0 and first[1].log == bad.log
    assert "unknown environment id 'CartPoel-v1'" in bad.log.read_text()
    assert env_steps(good) == 200 and "env steps 200" in good.log.read_text()
    assert [(o.action, o.finished) for o in again] == [("skipped", True), ("trained", False)]


def test_local_launcher_resumes_a_killed_run(tmp_path):
    killed = killed_job(tmp_path, "killed")
    [outcome] = launchers.LocalLauncher().run([killed])
    assert (outcome.action, outcome.finished) == ("resumed", True)
    assert env_steps(killed) == 200 and "resuming" in killed.log.read_text()


def test_ray_tasks_run_two_runs_resume_a_killed_one_and_skip_on_rerun(tmp_path):
    ray = pytest.importorskip("ray")
    killed, fresh = killed_job(tmp_path, "killed"), job(tmp_path, "fresh", seed=2)
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20)
    try:
        launcher = launchers.RayLauncher(gpus_per_run=0, cpus_per_run=1)
        first, again, ended = launch_twice(launcher, [killed, fresh])
    finally:
        ray.shutdown()
    assert [(o.action, o.finished) for o in first] == [("resumed", True), ("trained", True)]
    assert sorted(ended) == [("fresh", "trained"), ("killed", "resumed")]
    assert env_steps(killed) == env_steps(fresh) == 200
    assert "resuming" in killed.log.read_text()
    assert [o.action for o in again] == ["skipped", "skipped"]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the task in /proc")
def test_submitit_requeues_a_preempted_run_which_resumes(tmp_path):
    pytest.importorskip("submitit")
    long = job(tmp_path, "long", "--steps", "3000", "--set", "run.eval_every=1000")
    other = job(tmp_path, "other", seed=2)
    signalled = []

    def preempt():
        """Like SLURM before a preemption: submitit's signal to the task running ``long``
        (the parent of the CLI process holding the run folder's lock), once it has a
        checkpoint."""
        checkpoints = long.run_dir / "checkpoints"
        while not (checkpoints.is_dir() and any(checkpoints.iterdir())):
            time.sleep(0.02)
        pid = int(re.match(r"pid (\d+)", (long.run_dir / ".lock").read_text()).group(1))
        task = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        os.kill(task, signal.SIGUSR2)
        signalled.append(task)

    watcher = threading.Thread(target=preempt, daemon=True)
    watcher.start()
    launcher = launchers.SlurmLauncher(
        folder=tmp_path / "submitit", cluster="local", gpus_per_run=0, cpus_per_run=1
    )
    first, again, _ = launch_twice(launcher, [long, other])
    assert signalled, "the run ended before its first checkpoint was seen"
    assert [(o.action, o.finished) for o in first] == [("resumed", True), ("trained", True)]
    log = long.log.read_text()
    assert "stopped by SIGTERM at env step" in log and "resuming" in log
    assert env_steps(long) == 3000 and env_steps(other) == 200
    assert [o.action for o in again] == ["skipped", "skipped"]


def test_a_group_job_trains_its_seeds_together_and_is_skipped_once_finished(tmp_path):
    group_dir = tmp_path / "runs" / "g"
    args = runs.train_args(
        algo="dqn", preset="debug", env_id="CartPole-v1", seed=(0, 1), steps=200, out=group_dir
    )
    j = launchers.make_job("g", group_dir, args, tmp_path / "logs" / "g.log", seeds=(0, 1))
    assert not j.finished()
    first, again, _ = launch_twice(launchers.LocalLauncher(), [j])
    assert (first[0].action, first[0].finished, first[0].log) == ("trained", True, j.log)
    assert j.finished() and (again[0].action, again[0].finished) == ("skipped", True)
    for k in (0, 1):
        summary = json.loads((group_dir / f"seed{k}" / "summary.json").read_text())
        assert (summary["seed"], summary["env_steps"]) == (k, 200)
    assert launchers.with_seeds(args, [1])[args.index("--seeds") + 1] == "1"


def test_atari_jobs_group_seeds_per_process_and_the_report_finds_their_folders(tmp_path):
    from benchmarks import aggregate

    jobs = atari100k.benchmark_jobs(
        games=["Pong", "Boxing"],
        seeds=[0, 1, 2],
        steps=300,
        preset="atari100k",
        out=tmp_path,
        seeds_per_process=2,
    )
    assert [(j.name, j.seeds) for j in jobs] == [
        ("Pong__seeds0-1", (0, 1)),
        ("Boxing__seeds0-1", (0, 1)),
        ("Pong__seeds2-2", (2,)),
        ("Boxing__seeds2-2", (2,)),
    ]
    assert jobs[0].train_args[jobs[0].train_args.index("--seeds") + 1] == "0,1"
    assert jobs[0].log.name == "Pong__seeds0-1.log"
    for seed in (0, 1):
        (jobs[0].run_dir / f"seed{seed}").mkdir(parents=True)
    (tmp_path / "runs" / "Pong__seed2").mkdir()
    found = [
        (g, k, p.relative_to(tmp_path).as_posix()) for g, k, p in aggregate.run_folders(tmp_path)
    ]
    assert sorted(found) == [
        ("Pong", 0, "runs/Pong__seeds0-1/seed0"),
        ("Pong", 1, "runs/Pong__seeds0-1/seed1"),
        ("Pong", 2, "runs/Pong__seed2"),
    ]
    with pytest.raises(ValueError, match="seeds-per-process"):
        atari100k.benchmark_jobs(
            games=["Pong"], seeds=[0], steps=1, preset="p", out=tmp_path, seeds_per_process=0
        )
