"""Mutation check: plant each bug of ``mutants.py`` in a copy of the package and run its tests.

Not collected by pytest and not run in CI (it takes minutes). From the repository root::

    .venv/bin/python tests/mutation/run.py                 # every mutant
    .venv/bin/python tests/mutation/run.py --only rotation_clockwise teacher_not_detached
    .venv/bin/python tests/mutation/run.py --list          # the mutants, without running them

For each mutant, ``ipt_compose/``, ``tests/`` and ``pyproject.toml`` are copied into a temporary
directory (the real tree is never modified), the mutant's edits are applied to the copy (each edit's
text must occur exactly once in its file, or the mutant is reported ``STALE``: the code moved and the
mutant needs updating), and ``pytest -x -q -m "not slow"`` runs the mutant's tests there under a
timeout. A mutant is *caught* when a test fails (or the run times out), *survives* when every test
passes; a run that cannot start (collection or usage error) is an ``ERROR``, not a catch. Before the
mutants, every distinct test selection runs once on the unmodified copy: it must pass, or the score
would mean nothing. Prints a table and the score; exits 0 only if every mutant was caught.

Standard library only (pytest runs in a subprocess with this interpreter).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

from mutants import MUTANTS, Mutant  # noqa: E402

FAILED_LINE = re.compile(r"^(?:FAILED|ERROR) (\S+?)(?: - .*)?$", re.MULTILINE)


@dataclass
class Outcome:
    mutant: Mutant
    status: str  # CAUGHT, SURVIVED, STALE, ERROR
    detail: str
    seconds: float


def copy_tree(dest: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", ".pytest_cache")
    shutil.copytree(ROOT / "ipt_compose", dest / "ipt_compose", ignore=ignore)
    shutil.copytree(ROOT / "tests", dest / "tests", ignore=ignore)
    shutil.copy2(ROOT / "pyproject.toml", dest / "pyproject.toml")


def run_pytest(
    workdir: Path, tests: tuple[str, ...], timeout: float, seed: int
) -> tuple[int | None, str]:
    """``pytest -x -q`` on ``tests`` in ``workdir``; ``(exit code or None on timeout, output)``."""
    shutil.rmtree(workdir / ".hypothesis", ignore_errors=True)  # no example carried between mutants
    command = [
        sys.executable, "-m", "pytest", "-x", "-q", "-m", "not slow", "-p", "no:cacheprovider",
        f"--hypothesis-seed={seed}", "-o", "addopts=-ra", *tests,
    ]
    env = {**os.environ, "PYTHONPATH": str(workdir), "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        done = subprocess.run(
            command, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as expired:
        out = expired.stdout or ""
        return None, out if isinstance(out, str) else out.decode(errors="replace")
    return done.returncode, done.stdout + done.stderr


def first_failure(output: str) -> str:
    found = FAILED_LINE.search(output)
    return found.group(1) if found else "(no test named)"


def apply(mutant: Mutant, workdir: Path, originals: dict[str, str]) -> str | None:
    """Write the mutated file into ``workdir``; the reason it cannot be applied, or ``None``."""
    source = originals[mutant.file]
    for old, new in mutant.edits:
        if len(old) - len(old.lstrip(" ")) != len(new) - len(new.lstrip(" ")):
            return f"the edit changes the indentation of its first line: {old.strip()[:60]!r}"
        count = source.count(old)
        if count != 1:
            return f"edit text found {count} times (expected once): {old.strip()[:60]!r}"
        source = source.replace(old, new)
    try:
        compile(source, mutant.file, "exec")
    except SyntaxError as error:
        return f"the mutated file does not compile: {error}"
    (workdir / "ipt_compose" / mutant.file).write_text(source)
    return None


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", nargs="*", default=None, help="run only these mutant ids")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per pytest run")
    parser.add_argument("--hypothesis-seed", type=int, default=0, help="seed for every pytest run")
    args = parser.parse_args()

    ids = [m.id for m in MUTANTS]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        print(f"duplicate mutant ids: {sorted(duplicates)}")
        return 2
    chosen = [m for m in MUTANTS if args.only is None or m.id in args.only]
    if args.only:
        unknown = sorted(set(args.only) - set(ids))
        if unknown:
            print(f"unknown mutant ids: {unknown}")
            return 2
    if args.list:  # and check that every mutant still applies to the real tree (read only)
        stale = 0
        for m in chosen:
            source = (ROOT / "ipt_compose" / m.file).read_text()
            counts = [source.count(old) for old, _ in m.edits]
            state = "" if all(c == 1 for c in counts) else f"  STALE (edit texts found {counts} times)"
            stale += bool(state)
            print(f"{m.id:44s} {m.file:18s} {m.why}{state}")
        print(f"{len(chosen)} mutants, {stale} stale")
        return 1 if stale else 0

    with tempfile.TemporaryDirectory(prefix="ipt-mutants-") as tmp:
        workdir = Path(tmp)
        copy_tree(workdir)
        files = {m.file for m in chosen}
        originals = {f: (workdir / "ipt_compose" / f).read_text() for f in files}

        # the unmodified copy must pass every selection, or a "catch" would mean nothing
        for selection in sorted({m.tests for m in chosen}):
            start = time.perf_counter()
            code, output = run_pytest(workdir, selection, args.timeout, args.hypothesis_seed)
            took = time.perf_counter() - start
            if code != 0:
                print(f"baseline FAILED ({code}) on {' '.join(selection)} in {took:.0f}s:")
                print(output[-4000:])
                return 2
            print(f"baseline ok ({took:4.0f}s): {' '.join(selection)}", flush=True)

        outcomes: list[Outcome] = []
        for mutant in chosen:
            start = time.perf_counter()
            problem = apply(mutant, workdir, originals)
            if problem is not None:
                outcomes.append(Outcome(mutant, "STALE", problem, 0.0))
            else:
                code, output = run_pytest(workdir, mutant.tests, args.timeout, args.hypothesis_seed)
                if code is None:
                    outcomes.append(Outcome(mutant, "CAUGHT", f"timeout after {args.timeout:.0f}s", 0.0))
                elif code == 1:
                    outcomes.append(Outcome(mutant, "CAUGHT", first_failure(output), 0.0))
                elif code == 0:
                    outcomes.append(Outcome(mutant, "SURVIVED", "every selected test passed", 0.0))
                else:
                    tail = " | ".join(output.strip().splitlines()[-3:])
                    outcomes.append(Outcome(mutant, "ERROR", f"pytest exit {code}: {tail}", 0.0))
            (workdir / "ipt_compose" / mutant.file).write_text(originals[mutant.file])
            outcomes[-1].seconds = time.perf_counter() - start
            last = outcomes[-1]
            print(f"{last.status:8s} {mutant.id} ({last.seconds:.0f}s): {last.detail}", flush=True)

    print()
    width = max(len(o.mutant.id) for o in outcomes)
    file_width = max(len(o.mutant.file) for o in outcomes)
    print(f"| {'mutant':{width}s} | {'file':{file_width}s} | result   | caught by |")
    print(f"|{'-' * (width + 2)}|{'-' * (file_width + 2)}|----------|-----------|")
    for o in outcomes:
        print(f"| {o.mutant.id:{width}s} | {o.mutant.file:{file_width}s} | {o.status:8s} | {o.detail} |")
    caught = sum(o.status == "CAUGHT" for o in outcomes)
    scored = sum(o.status in ("CAUGHT", "SURVIVED") for o in outcomes)
    others = {s: sum(o.status == s for o in outcomes) for s in ("STALE", "ERROR")}
    print()
    print(
        f"score: {caught}/{scored} caught"
        + (f" ({100 * caught / scored:.1f}%)" if scored else "")
        + "".join(f", {n} {s.lower()}" for s, n in others.items() if n)
    )
    return 0 if caught == scored == len(outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
