"""Run every benchmark in bench/ in turn (make bench). Each prints its own ratios."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = [
    "ledger.py",
    "panel.py",
    "fanout.py",
    "retention.py",
    "erasure.py",
    "export.py",
    "insight.py",
    "evidence.py",
    "api.py",
    "webhooks.py",
]

if __name__ == "__main__":
    for name in BENCHMARKS:
        print(f"== {name}", flush=True)
        subprocess.run([sys.executable, str(HERE / name), *sys.argv[1:]], check=True)
