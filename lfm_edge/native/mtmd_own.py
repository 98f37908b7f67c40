"""llama.cpp's OWN image path (mtmd decodes the file, resizes, tiles and inserts its markers), for comparison only.

The runtime never uses this: it is here to measure how far llama.cpp's preprocessing (letterboxed tiles, its own
rounding, hard-coded knobs; SPEC.md §7.2) lands from transformers, beside our HF-exact path.
"""

from __future__ import annotations

import ctypes

import numpy as np
from llama_cpp import llama_cpp as lc
from llama_cpp import mtmd_cpp as mtmd

from lfm_edge.errors import ModelError
from lfm_edge.native.compute_thread import COMPUTE
from lfm_edge.native.text import TextModel


def own_path_logits(text: TextModel, mmproj: str, prompt: str, image_files: list[bytes]) -> np.ndarray:
    """Last-position logits of `prompt` (one `<image>` per image) evaluated through mtmd's own image pipeline."""
    params = mtmd.mtmd_context_params_default()
    params.use_gpu = False
    params.print_timings = False
    params.warmup = False
    params.n_threads = text.options.n_threads or 2
    ctx = mtmd.mtmd_init_from_file(mmproj.encode(), text.model, params)
    if not ctx:
        raise ModelError(f"mtmd could not load {mmproj}")
    chunks = mtmd.mtmd_input_chunks_init()
    bitmaps = []
    try:
        for data in image_files:
            buffer = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
            bitmaps.append(mtmd.mtmd_helper_bitmap_init_from_buf(ctx, buffer, len(data), False))
        marked = prompt.replace("<image>", mtmd.mtmd_default_marker().decode()).encode()
        text_input = mtmd.mtmd_input_text(marked, len(marked), False, True)
        array = (mtmd.mtmd_bitmap_p_ctypes * len(bitmaps))(*bitmaps)
        if mtmd.mtmd_tokenize(ctx, chunks, ctypes.byref(text_input), array, len(bitmaps)) != 0:
            raise ModelError("mtmd could not tokenize the prompt")
        text.clear()
        new_n_past = lc.llama_pos(0)
        status = COMPUTE.run(mtmd.mtmd_helper_eval_chunks, ctx, text.ctx, chunks, 0, 0, text.options.n_batch, True,
                             ctypes.byref(new_n_past))  # fmt: skip
        if status != 0:
            raise ModelError(f"mtmd_helper_eval_chunks failed ({status})")
        return text.last_logits()
    finally:
        for bitmap in bitmaps:
            mtmd.mtmd_bitmap_free(bitmap)
        mtmd.mtmd_input_chunks_free(chunks)
        mtmd.mtmd_free(ctx)
