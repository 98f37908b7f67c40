"""Runs one command and reports its wall time and peak resident memory (of it and its children).

    python -m benchmarks.measure COMMAND...   -> one JSON line {"seconds": ..., "peak_rss_mb": ..., "returncode": ...}

A process of its own per measured command, so RUSAGE_CHILDREN covers exactly that command.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time


def main() -> int:
    start = time.perf_counter()
    completed = subprocess.run(sys.argv[1:], check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    report: dict[str, object] = {
        "seconds": round(seconds, 3),
        "peak_rss_mb": round(peak_kib / 1024, 1),
        "returncode": completed.returncode,
    }
    if completed.returncode:
        report["stderr_tail"] = completed.stderr.decode(errors="replace")[-2000:]
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
