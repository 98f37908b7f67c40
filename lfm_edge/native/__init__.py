"""The package that touches llama-cpp-python's ctypes layer (llama_cpp.llama_cpp and llama_cpp.mtmd_cpp), with
lfm_edge.vision.mtmd (the mtmd vision backend: one preprocessed crop -> embeddings).

text.py: the text model and its context (tokenize, decode tokens or embeddings, logits, state snapshots);
sampling.py: llama.cpp's sampler chain; logs.py;
quantize.py: llama.cpp's quantizer (llama_model_quantize) for text GGUF files.
"""

from lfm_edge.native.logs import route_native_logs

__all__ = ["route_native_logs"]
