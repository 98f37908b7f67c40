"""The Python API on the converted tiny model: generation, streaming, stop strings, chat reuse, bad input."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import lfm_edge.model as api
from lfm_edge.errors import ConfigError, LfmEdgeError, ModelError, PromptError
from lfm_edge.generation import GenerationOptions
from lfm_edge.mmproj import check_pair
from lfm_edge.native.sampling import SamplingParams
from lfm_edge.resolve import ModelFiles

GREEDY = GenerationOptions(max_tokens=12, sampling=SamplingParams(temperature=0))
Converted = Callable[..., tuple[Path, Path]]


@pytest.fixture(scope="module")
def model(converted: Converted) -> Iterator[api.Model]:
    text, _ = converted("official-2.5", "f16")
    with api.load(text, n_ctx=2048, n_threads=2) as loaded:
        yield loaded


def test_greedy_generation_is_deterministic(model: api.Model) -> None:
    first, second = model.generate("Hello", options=GREEDY), model.generate("Hello", options=GREEDY)
    assert first.token_ids == second.token_ids and first.completion_tokens == 12
    assert first.finish_reason == "length" and first.timings.decode_tokens == 11


def test_seeded_sampling_is_reproducible(model: api.Model) -> None:
    options = GenerationOptions(max_tokens=10, sampling=SamplingParams(temperature=1.0, seed=7, min_p=0.0))
    assert model.generate("Hi", options=options).token_ids == model.generate("Hi", options=options).token_ids


def test_stream_pieces_join_to_the_completion_text(model: api.Model) -> None:
    stream = model.stream("Tell me", options=GREEDY)
    pieces = list(stream)
    assert stream.completion is not None and "".join(pieces) == stream.completion.text


def test_stop_string_cuts_the_text(model: api.Model) -> None:
    full = model.generate("Hello", options=GREEDY).text
    stop = full[3:6]
    if not stop.strip():
        pytest.fail(f"the greedy text {full!r} is too short to pick a stop string from")
    cut = model.generate("Hello", options=GenerationOptions(max_tokens=12, stop=(stop,),
                                                            sampling=SamplingParams(temperature=0)))  # fmt: skip
    assert cut.text == full[: full.index(stop)] and cut.finish_reason == "stop"


def test_chat_follow_up_reuses_the_evaluated_prefix(model: api.Model) -> None:
    chat = model.chat(system="Be brief.", options=GREEDY)
    first = chat.send("Hi")
    second = chat.send("More?")
    assert first.timings.reused_tokens == 0 or first.timings.reused_tokens < first.prompt_tokens
    assert second.timings.reused_tokens >= first.prompt_tokens
    assert [m["role"] for m in chat.history] == ["system", "user", "assistant", "user", "assistant"]
    chat.reset()
    assert [m["role"] for m in chat.history] == ["system"]


def test_prompt_longer_than_the_context_is_a_clear_error_and_the_model_still_works(model: api.Model) -> None:
    with pytest.raises(PromptError, match="context holds 2048"):
        model.generate("word " * 3000, options=GREEDY)
    assert model.generate("Hello", options=GREEDY).completion_tokens == 12


@pytest.mark.parametrize("bad", [{"temperature": -1.0}, {"min_p": 2.0}, {"top_p": 0.0}, {"seed": -3}])
def test_invalid_sampling_knob(bad: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        SamplingParams(**bad)  # type: ignore[arg-type]


def test_wrong_files_are_typed_errors(converted: Converted, tmp_path: Path) -> None:
    text, mmproj = converted("official-2.5", "f16")
    with pytest.raises(ModelError, match="could not load"):
        api.load(mmproj)  # an mmproj is not a text model: llama.cpp refuses it
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(text.read_bytes()[:100_000])
    with pytest.raises(ModelError):
        api.load(truncated)
    with pytest.raises(LfmEdgeError):
        api.load(tmp_path / "missing.gguf")
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    shutil.copy(text, lonely / text.name)
    with api.load(lonely, n_threads=2) as loaded:
        assert loaded.vision is None
        with pytest.raises(ModelError, match="without an mmproj"):
            loaded.generate("What is this?", images=[b"never decoded"], options=GREEDY)


def test_mismatched_mmproj_is_refused() -> None:
    files = ModelFiles(Path("text.gguf"), Path("mmproj.gguf"))
    text = {"general.architecture": "lfm2"}
    mmproj = {"general.architecture": "clip", "clip.projector_type": "lfm2", "clip.vision.projection_dim": 1024}
    with pytest.raises(ModelError, match="projects to width 1024"):
        check_pair(text, mmproj, 2048, files)
    with pytest.raises(ModelError, match="not LFM2"):
        check_pair({"general.architecture": "llama"}, mmproj, 1024, files)
    with pytest.raises(ModelError, match="not an LFM2-VL mmproj"):
        check_pair(text, {**mmproj, "clip.projector_type": "mlp"}, 1024, files)


def test_every_image_input_kind_gives_the_same_prompt(model: api.Model) -> None:
    import io

    import numpy as np
    from PIL import Image

    from lfm_edge.engine import _units
    from lfm_edge.prompt import RenderOptions

    path = Path(__file__).parent / "images" / "photo_336x240.png"
    pil = Image.open(path)
    sources = [path, str(path), path.read_bytes(), io.BytesIO(path.read_bytes()), pil, np.asarray(pil.convert("RGB"))]
    prompts = []
    for source in sources:
        messages = [{"role": "user", "content": [{"type": "image", "image": source}, {"type": "text", "text": "Hi"}]}]
        prompts.append(_units(model.prompts.build(messages, RenderOptions(), model.settings)))
    assert all(prompt == prompts[0] for prompt in prompts)


def test_bad_image_is_an_image_error_and_the_model_still_works(model: api.Model) -> None:
    from lfm_edge.errors import ImageError

    with pytest.raises(ImageError):
        model.generate("What is this?", images=[b"not an image at all"], options=GREEDY)
    assert model.generate("Hello", options=GREEDY).completion_tokens == 12


def test_image_knobs_change_the_prompt_and_are_validated(model: api.Model) -> None:
    image = Path(__file__).parent / "images" / "photo_1024x768.jpg"
    small = model.generate("Hi", images=[image], options=GREEDY, max_image_tokens=64, do_image_splitting=False)
    large = model.generate("Hi", images=[image], options=GREEDY)
    assert small.prompt_tokens < large.prompt_tokens
    with pytest.raises(ConfigError, match="min_image_tokens"):
        model.generate("Hi", images=[image], options=GREEDY, min_image_tokens=512)


def test_generation_stops_cleanly_when_the_context_is_full(converted: Converted) -> None:
    text, _ = converted("official-2.5", "f16")
    with api.load(text, n_ctx=64, n_threads=2) as small:
        prompt_tokens = small.generate("Hi", options=GenerationOptions(max_tokens=1)).prompt_tokens
        result = small.generate("Hi", options=GenerationOptions(max_tokens=500, sampling=SamplingParams(temperature=0)))
        assert result.finish_reason == "length"
        n_ctx = small.text.n_ctx  # llama.cpp rounds the context up (to 256 here)
        # every position is used, the last sampled token is returned but cannot be evaluated
        assert prompt_tokens + result.completion_tokens == n_ctx + 1
        assert small.generate("Hi", options=GREEDY).completion_tokens == 12
