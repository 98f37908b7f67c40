"""`lfm-edge doctor`: what this installation can do (llama.cpp build, offload backends)."""

from __future__ import annotations

import platform

from lfm_edge import __version__


def report() -> str:
    lines = [f"lfm-edge {__version__}", f"python {platform.python_version()} on {platform.machine()}"]
    try:
        import llama_cpp
    except ImportError as exc:
        lines.append(f"llama-cpp-python: not importable ({exc}); reinstall with `make venv`")
        return "\n".join(lines)
    lines.append(f"llama-cpp-python {llama_cpp.__version__}")
    lines.append(f"GPU offload supported: {bool(llama_cpp.llama_supports_gpu_offload())}")
    lines.append(f"mmap supported: {bool(llama_cpp.llama_supports_mmap())}")
    info = llama_cpp.llama_print_system_info()
    lines.append(f"system: {info.decode(errors='replace').strip() if isinstance(info, bytes) else info}")
    return "\n".join(lines)
