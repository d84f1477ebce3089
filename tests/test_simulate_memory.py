"""``omninode simulate`` fed 200,000 distinct event types the chart does not know peaks at
no more memory than fed 200,000 events of one type: unknown types leave nothing behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EVENTS = 200_000

CHART = """\
rss: 1
workflow: mem
version: 1
initial: idle
states:
  idle:
    on: {GO: busy}
  busy:
    on: {BACK: idle}
"""

# `omninode simulate` in a child process that reports its own peak resident set (KiB).
SIMULATE = """\
import resource, sys
from app.cli.main import main
code = main(sys.argv[1:])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


def _script(path: Path, distinct: bool) -> Path:
    types = (f"U{n if distinct else 0:06d}" for n in range(EVENTS))
    lines = [json.dumps({"type": "$start"}), *(json.dumps({"type": t}) for t in types)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_simulate_over_200000_distinct_unknown_event_types_peaks_like_over_one_type(
    tmp_path: Path,
) -> None:
    chart = tmp_path / "mem.yaml"
    chart.write_text(CHART)
    scripts = {
        "distinct": _script(tmp_path / "distinct.jsonl", distinct=True),
        "one type": _script(tmp_path / "one.jsonl", distinct=False),
    }
    # Both at once: each is a separate process, so each peak is its own.
    children = {
        name: subprocess.Popen(
            [sys.executable, "-c", SIMULATE, "simulate", str(chart), str(script)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, script in scripts.items()
    }
    peaks = {}
    for name, child in children.items():
        _, err = child.communicate(timeout=300)
        assert child.returncode == 0, err
        peaks[name] = int(err.split()[-1])
    assert peaks["distinct"] <= 1.2 * peaks["one type"], peaks
