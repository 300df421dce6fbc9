"""Which commands ask XLA for several CPU devices, how many, and how the request is written."""

import json
import sys

import pytest

from dreamer.core.seeds import devices_for
from dreamer.shell import cpu_devices
from dreamer.shell.cpu_devices import FLAG, VARIABLE, request_cpu_devices
from dreamer.shell.cpu_devices import seeds_together as together


def test_the_seeds_a_command_trains_together(tmp_path):
    fused, host = tmp_path / "fused", tmp_path / "host"
    for folder, is_fused in ((fused, True), (host, False)):
        folder.mkdir()
        record = {"algo": "efficientzero", "seeds": [0, 1, 2, 3], "fused": is_fused}
        (folder / cpu_devices.GROUP_FILE).write_text(json.dumps(record))
    assert together(["train", "--env", "gymnax:CartPole-v1", "--seeds", "0-9"]) == 10
    assert together(["train", "--seeds=0,1", "--algo", "efficientzero"]) == 2
    assert together(["train", "--algo", "dqn", "--seeds", "0-9"]) == 0  # one after another
    assert together(["train", "--env", "CartPole-v1", "--seed", "3"]) == 0
    assert together(["train", "--seeds", "0 1"]) == 0  # the CLI refuses it, with its reason
    assert together(["resume", str(fused)]) == 4
    assert together(["resume", "--set", "run.x=1", str(fused)]) == 4  # past a non-folder
    assert together(["train", "--seeds"]) == 0  # no value: the CLI says what is missing
    assert together(["resume", str(host)]) == 0
    assert together(["resume", str(tmp_path / "missing")]) == 0
    assert together(["show-config", "--seeds", "0-9"]) == 0 and together([]) == 0


def test_the_devices_hold_whole_seeds():
    assert devices_for(10, 2) == 2 and devices_for(10, 16) == 10 and devices_for(12, 8) == 6
    assert devices_for(5, 2) == 1 and devices_for(3, 2) == 1 and devices_for(0, 4) == 1


def test_the_group_file_is_the_loops_own():
    from dreamer.loops import groups

    assert cpu_devices.GROUP_FILE == groups.GROUP_FILE


def test_the_request_splits_the_cpu_only_where_seeds_split(monkeypatch):
    monkeypatch.delitem(sys.modules, "jax")  # as before JAX starts (restored after the test)
    monkeypatch.setattr(cpu_devices, "usable_cores", lambda: 4)
    environ = {"XLA_FLAGS": "--xla_dump_to=/tmp/x"}
    assert request_cpu_devices(10, environ) == 2
    assert environ["XLA_FLAGS"] == f"--xla_dump_to=/tmp/x {FLAG}=2"
    assert request_cpu_devices(8, environ) is None  # a count is set: left as it is
    for seeds in (0, 1, 5):  # one device is all that helps: nothing asked for
        environ = {}
        assert request_cpu_devices(seeds, environ) is None and environ == {}
    environ = {VARIABLE: "1"}  # the CPU as one device: nothing to ask for
    assert request_cpu_devices(10, environ) is None and "XLA_FLAGS" not in environ
    environ = {VARIABLE: "3"}
    assert request_cpu_devices(0, environ) == 3 and environ["XLA_FLAGS"] == f"{FLAG}=3"
    with pytest.raises(SystemExit, match="DREAMER_CPU_DEVICES='two' is not a device count"):
        request_cpu_devices(10, {VARIABLE: "two"})
    with pytest.raises(SystemExit, match="not a device count"):
        request_cpu_devices(10, {VARIABLE: "0"})


def test_the_request_does_nothing_once_jax_has_started():
    import jax  # noqa: F401

    environ: dict[str, str] = {}
    assert request_cpu_devices(10, environ) is None and environ == {}


def test_usable_cores_without_an_affinity_is_the_cpu_count(monkeypatch):
    import os

    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    assert cpu_devices.usable_cores() == 4
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # unknown: one core
    assert cpu_devices.usable_cores() == 1


def test_a_pinned_process_records_the_cores_it_may_use(monkeypatch):
    """A run pinned to one core (``taskset -c 0``) records "1 of 8 cores", not the host's 8:
    its wall-clock is that of one core."""
    from benchmarks import machine
    from dreamer.shell import runlog

    monkeypatch.setattr(cpu_devices.os, "cpu_count", lambda: 8)
    for module in (runlog, machine):
        monkeypatch.setattr(module, "usable_cores", lambda: 1)
    assert runlog.device_description().endswith(", 1 of 8 cores)")
    assert "| 1 of 8 CPUs (affinity) |" in machine.format_machine(
        machine.describe_machine(with_jax=False)
    )
    for module in (runlog, machine):
        monkeypatch.setattr(module, "usable_cores", lambda: 8)
    assert runlog.device_description().endswith(", 8 cores)")
    assert "| 8 CPUs |" in machine.format_machine(machine.describe_machine(with_jax=False))
