"""Benchmarks: Atari 100k runs and scoring, sample-efficiency suites, published reference data.

Modules:

* ``published``  -- the published Atari 100k table (``reference/``), game names and ALE ids.
* ``stats``      -- human-normalised scores, mean / median / IQM, bootstrap intervals.
* ``curves``     -- learning-curve alignment and threshold logic (pure functions).
* ``runs``       -- run folders of the ``python -m dreamer`` CLI: state, launching, reading.
* ``suites``     -- sample-efficiency suites (envs x algos x budgets x seeds) as frozen records.
* ``plots``      -- the PNG figures; ``machine`` -- the machine a benchmark ran on.
* ``scores``     -- ``python -m benchmarks.scores``: aggregates of the published columns.
* ``atari100k``  -- ``python -m benchmarks.atari100k``: runs games x seeds through the CLI.
* ``aggregate``  -- ``python -m benchmarks.aggregate``: report and figures of those runs.
* ``sample_efficiency`` -- ``python -m benchmarks.sample_efficiency``: algos at equal budgets.

Nothing in ``dreamer``, ``envs`` or ``experiments`` imports this package.
"""
