"""`lfm-edge quantize`: an HF checkpoint -> the official GGUF repo's set of quantized files, a manifest, a model
card stub and a quality report against F16."""

from convert.quantize.pipeline import QuantizeOptions, QuantizeResult, quantize_checkpoint

__all__ = ["QuantizeOptions", "QuantizeResult", "quantize_checkpoint"]
