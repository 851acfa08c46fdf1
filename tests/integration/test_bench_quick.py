"""`bench/run.py --quick` (what `make bench-quick` runs): the bench's invariants on small data.

Starts the real server in a subprocess and checks what must hold whatever the speed: pages
render with their cards, "Show all" gives every card of a column, board actions answer 200
and a refusal its alert, 16 clients' pulls all succeed, a WIP race gives exactly the intended
409s, SSE viewers get every pull, no 5xx and no traceback. No timing is asserted.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BACKENDS, POSTGRES_URL

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("backend", BACKENDS)
def test_bench_quick_invariants_hold(backend: str) -> None:
    args = [sys.executable, str(ROOT / "bench" / "run.py"), "--quick"]
    if backend == "postgresql":
        args += ["--postgres", POSTGRES_URL, "--no-sqlite"]
    done = subprocess.run(
        args, cwd=ROOT, capture_output=True, text=True, timeout=600, env=dict(os.environ)
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert "invariants: all held" in done.stdout, out[-4000:]
    assert "INVARIANT FAILED" not in done.stdout
    # Every part ran (a part that raised would be an invariant failure, but make sure none
    # was skipped): SQLite runs the page parts too.
    parts = ["-- writes", "-- live"] + (
        ["-- board", "-- column", "-- actions", "-- memory"] if backend == "sqlite" else []
    )
    for part in parts:
        assert part in done.stdout, out[-4000:]
