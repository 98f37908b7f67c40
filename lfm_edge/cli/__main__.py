"""`python -m lfm_edge.cli`: the same as the `lfm-edge` command."""

import sys

from lfm_edge.cli import main

sys.exit(main())
