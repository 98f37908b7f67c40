"""Synthetic LFM2.5-VL / LFM2-VL checkpoints with the official layout and random weights.

The real weights cannot reach our machines, so every claim about the converter, the preprocessor and the runtime is
proven on these folders. ``write_checkpoint`` writes a complete Hugging Face model folder, atomically.
"""

from convert.synthetic.configs import LAYOUTS, MODEL_LAYOUTS, SIZES, CheckpointSpec
from convert.synthetic.writer import describe, write_checkpoint

__all__ = ["LAYOUTS", "MODEL_LAYOUTS", "SIZES", "CheckpointSpec", "describe", "write_checkpoint"]
