"""build/pi/pi-check.json from the timings pi_check.sh and in_root.sh wrote: every step's wall time and status.

python tools/pi/summary.py build/pi cortex-a72 cortex-a76
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path


def read_steps(path: Path) -> list[dict[str, object]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def main(work: Path, cpus: list[str]) -> int:
    emulated = {cpu: read_steps(work / cpu / "timings.jsonl") for cpu in cpus}
    report = {
        "build_machine": f"{platform.machine()}, {platform.system()}",
        "host_steps": read_steps(work / "host-timings.jsonl"),
        "emulated": emulated,
        "passed": all(step["status"] == 0 for steps in emulated.values() for step in steps)
        and all(len(steps) > 0 for steps in emulated.values()),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2:]))
