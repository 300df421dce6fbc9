"""Which commands ask XLA for one CPU device per core, and how the request is written."""

import sys

import pytest

from dreamer.shell import cpu_devices
from dreamer.shell.cpu_devices import FLAG, VARIABLE, request_cpu_devices, trains_seeds_together


def test_only_commands_that_train_seeds_together_split_the_cpu(tmp_path):
    group, single = tmp_path / "group", tmp_path / "single"
    group.mkdir()
    single.mkdir()
    (group / cpu_devices.GROUP_FILE).write_text("{}")
    assert trains_seeds_together(["train", "--env", "gymnax:CartPole-v1", "--seeds", "0-9"])
    assert trains_seeds_together(["train", "--seeds=0,1"])
    assert not trains_seeds_together(["train", "--env", "CartPole-v1", "--seed", "3"])
    assert trains_seeds_together(["resume", str(group)])
    assert not trains_seeds_together(["resume", str(single)])
    assert not trains_seeds_together(["show-config", str(group)])
    assert not trains_seeds_together([])


def test_the_group_file_is_the_loops_own():
    from dreamer.loops import groups

    assert cpu_devices.GROUP_FILE == groups.GROUP_FILE


def test_the_request_adds_one_device_per_core_unless_a_count_is_set(monkeypatch):
    monkeypatch.delitem(sys.modules, "jax")  # as before JAX starts (restored after the test)
    monkeypatch.setattr(cpu_devices, "usable_cores", lambda: 6)
    environ = {"XLA_FLAGS": "--xla_dump_to=/tmp/x"}
    assert request_cpu_devices(environ) == 6
    assert environ["XLA_FLAGS"] == f"--xla_dump_to=/tmp/x {FLAG}=6"
    assert request_cpu_devices(environ) is None  # a count is set: left as it is
    environ = {VARIABLE: "3"}
    assert request_cpu_devices(environ) == 3 and environ["XLA_FLAGS"] == f"{FLAG}=3"
    with pytest.raises(SystemExit, match="DREAMER_CPU_DEVICES='two' is not a device count"):
        request_cpu_devices({VARIABLE: "two"})
    with pytest.raises(SystemExit, match="not a device count"):
        request_cpu_devices({VARIABLE: "0"})


def test_the_request_does_nothing_once_jax_has_started():
    import jax  # noqa: F401

    environ: dict[str, str] = {}
    assert request_cpu_devices(environ) is None and environ == {}
