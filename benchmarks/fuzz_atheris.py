"""Coverage-guided fuzzing of one parser with atheris (libFuzzer); started by benchmarks/fuzz_parsers.py.

    python -m benchmarks.fuzz_atheris PARSER [libFuzzer flags...] [corpus folder]

The parsers are imported under atheris' instrumentation (so libFuzzer sees their branch coverage) and the same
checks as the seeded run apply. Bytes become text as UTF-8 with ``surrogateescape`` (invalid bytes turn into lone
surrogates, the most hostile strings Python has); a CRC of the bytes seeds the random split of the stream check.
A broken contract or an undocumented exception is a libFuzzer crash: non-zero exit, input saved as an artifact.
atheris is optional (``pip install atheris``); it is not a dependency of lfm_edge.
"""

from __future__ import annotations

import importlib
import random
import sys
import traceback
import zlib
from typing import Any


def main() -> None:
    atheris: Any = importlib.import_module("atheris")
    with atheris.instrument_imports(include=["lfm_edge.parse", "lfm_edge.errors"]):
        from benchmarks.fuzz_checks import CHECKS
        from benchmarks.fuzz_inputs import Sample
    check = CHECKS[sys.argv[1]]

    def test_one_input(data: bytes) -> None:
        try:
            check(Sample(data.decode("utf-8", "surrogateescape")), random.Random(zlib.crc32(data)))
        except Exception:
            # ASCII only: a message holding a lone surrogate must not break the report of the crash itself.
            sys.stderr.write(traceback.format_exc().encode("ascii", "backslashreplace").decode("ascii"))
            sys.stderr.flush()
            raise

    atheris.Setup([sys.argv[0], *sys.argv[2:]], test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
