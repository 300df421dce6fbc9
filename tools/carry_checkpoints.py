"""Carry the unfinished runs under ``results/`` across a stop: track their newest checkpoint.

    python -m tools.carry_checkpoints             # stage them (git add -f), then commit
    python -m tools.carry_checkpoints --dry-run   # list what would be staged

``results/`` keeps run records but not checkpoints (``.gitignore``): a run cut by the end of a
working session would start over in the next clone. For each run folder there (one with
``config.json`` and a ``checkpoints/`` folder) that has no ``summary.json`` yet, this stages
its newest complete checkpoint, so the next clone resumes it with the same benchmark command.
Every other checkpoint already tracked (older steps, finished runs) is untracked again: the
files stay on disk, only the index changes. A run that resumes from a carried checkpoint later
deletes it as its checkpointer rotates; staging ``results/`` then untracks it.

The staged size is printed; above ``--max-mb`` nothing is staged (history keeps every carried
checkpoint, so carry the long groups, not everything).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from dreamer.shell.checkpoint import CHECKPOINT_DIR, latest_checkpoint

REPO = Path(__file__).resolve().parents[1]


def unfinished_checkpoints(root: Path) -> list[Path]:
    """The newest complete checkpoint folder of each unfinished run under ``root``."""
    carried = []
    for config in sorted(root.rglob("config.json")):
        run = config.parent
        if (run / "summary.json").exists() or not (run / CHECKPOINT_DIR).is_dir():
            continue
        step = latest_checkpoint(run)
        if step is not None:
            carried.append(run / CHECKPOINT_DIR / str(step))
    return carried


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def _step_folder(path: str, marker: str) -> str:
    """``run/checkpoints/<step>`` of a file path inside a checkpoint."""
    run, _, inside = path.partition(marker)
    return run + marker + inside.split("/")[0]


def _size_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20


def carry(root: Path, *, repo: Path, max_mb: float, dry_run: bool) -> int:
    root = root.absolute()
    carried = unfinished_checkpoints(root)
    size = sum(_size_mb(c) for c in carried)
    for checkpoint in carried:
        print(f"carry  {checkpoint.relative_to(repo)}  ({_size_mb(checkpoint):.1f} MB)")
    print(f"{len(carried)} unfinished run(s), {size:.1f} MB of checkpoints")
    if size > max_mb:
        print(
            f"carry_checkpoints: {size:.1f} MB is over --max-mb {max_mb:g}; nothing staged. "
            "Narrow the root (e.g. results/classic) or raise --max-mb.",
            file=sys.stderr,
        )
        return 1
    keep = {c.relative_to(repo).as_posix() for c in carried}
    tracked = _git("ls-files", "--", str(root.relative_to(repo)), cwd=repo).splitlines()
    marker = f"/{CHECKPOINT_DIR}/"
    stale = sorted({_step_folder(path, marker) for path in tracked if marker in path} - keep)
    for folder in stale:
        print(f"untrack {folder}")
    if dry_run:
        return 0
    if stale:
        _git("rm", "-r", "-q", "--cached", "--ignore-unmatch", *stale, cwd=repo)
    if keep:
        _git("add", "-f", *sorted(keep), cwd=repo)
    print("staged; commit them with the results")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=REPO / "results")
    parser.add_argument("--max-mb", type=float, default=150.0)
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    return carry(args.root, repo=REPO, max_mb=args.max_mb, dry_run=args.dry_run)


if __name__ == "__main__":
    sys.exit(main())
