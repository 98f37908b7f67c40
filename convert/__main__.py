"""python -m convert MODEL_DIR_OR_REPO --outdir D [--outtype f32|f16|bf16|q8_0] [--force] [--quiet]"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from convert.api import ConvertOptions, convert_checkpoint
from convert.gguf_out import OUTTYPES
from lfm_edge.errors import LfmEdgeError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m convert", description=__doc__)
    parser.add_argument("model", help="checkpoint folder or Hugging Face repo id")
    parser.add_argument("--outdir", type=Path, default=Path("."))
    parser.add_argument("--outtype", choices=sorted(OUTTYPES), default="f16")
    parser.add_argument("--force", action="store_true", help="overwrite existing output files")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        result = convert_checkpoint(args.model, ConvertOptions(args.outdir, args.outtype, args.force, args.quiet))
    except LfmEdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(result.text)
    print(result.mmproj)
    return 0


if __name__ == "__main__":
    sys.exit(main())
