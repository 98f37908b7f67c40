"""The only package that touches llama-cpp-python's ctypes layer (llama_cpp.llama_cpp and llama_cpp.mtmd_cpp).

text.py: the text model and its context (tokenize, decode tokens or embeddings, logits, state snapshots);
sampling.py: llama.cpp's sampler chain; vision.py: mtmd, one preprocessed crop -> embeddings; logs.py;
quantize.py: llama.cpp's quantizer (llama_model_quantize) for text GGUF files.
"""

from lfm_edge.native.logs import route_native_logs
from lfm_edge.native.vision import VisionEncoder, VisionOptions

__all__ = ["VisionEncoder", "VisionOptions", "route_native_logs"]
