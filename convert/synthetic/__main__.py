"""python -m convert.synthetic OUTDIR [--size tiny|full] [--layout ...] [--seed N] [--force]"""

from __future__ import annotations

import argparse
import logging
import sys

from convert.synthetic import LAYOUTS, SIZES, CheckpointSpec, write_checkpoint
from lfm_edge.errors import LfmEdgeError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m convert.synthetic", description=__doc__)
    parser.add_argument("outdir")
    parser.add_argument("--size", default="tiny", help=f"one of {', '.join(SIZES)}")
    parser.add_argument("--layout", default="official-2.5", help=f"one of {', '.join(LAYOUTS)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="replace an existing folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        write_checkpoint(args.outdir, CheckpointSpec(args.size, args.layout, args.seed), force=args.force)
    except LfmEdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
