"""`import lfm_edge` exposes the public API at the top level without loading llama.cpp (or numpy) until used."""

from __future__ import annotations

import subprocess
import sys

import pytest

import lfm_edge


def _imported_after(code: str) -> set[str]:
    script = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"
    output = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout
    return set(output.split())


def test_import_loads_neither_llama_cpp_nor_numpy() -> None:
    modules = _imported_after("import lfm_edge; lfm_edge.LfmEdgeError; lfm_edge.__version__")
    assert "lfm_edge" in modules
    assert not {"llama_cpp", "numpy", "lfm_edge.model"} & modules


def test_first_use_imports_the_api() -> None:
    assert "llama_cpp" in _imported_after("import lfm_edge; lfm_edge.load")


@pytest.mark.parametrize("name", sorted(set(lfm_edge.__all__) - {"__version__"}))
def test_every_public_name_resolves(name: str) -> None:
    value = getattr(lfm_edge, name)
    assert value is not None and name in dir(lfm_edge)
    if isinstance(value, type) and issubclass(value, Exception):
        assert issubclass(value, lfm_edge.LfmEdgeError)


def test_the_same_objects_as_their_modules() -> None:
    from lfm_edge.chat import Chat
    from lfm_edge.model import LoadOptions, Model, load

    assert (lfm_edge.load, lfm_edge.Model, lfm_edge.LoadOptions, lfm_edge.Chat) == (load, Model, LoadOptions, Chat)


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'lod'"):
        lfm_edge.lod  # noqa: B018
