"""Test tooling, not part of the default suite or of the installed packages.

* ``mutation``     -- ``python -m tools.mutation`` (``make mutation``): mutmut's mutants of the
  core modules, each run against the tests that cover its module; a report per module.
* ``planted_bugs`` -- ``python -m tools.planted_bugs`` (``make planted-bugs``): known bugs
  planted one at a time; each must make the tests that cover it fail.

They run from the repository (a source checkout); nothing in ``dreamer``, ``envs``,
``experiments`` or ``benchmarks`` imports them.
"""
