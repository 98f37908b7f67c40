"""UTF-8-safe streaming and stop strings, including splits at every byte/character boundary."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lfm_edge.textstream import StopMatcher, TokenTextDecoder


def _stream(pieces: list[str], stops: list[str]) -> tuple[str, bool]:
    matcher = StopMatcher(stops)
    shown = "".join(matcher.feed(piece) for piece in pieces)
    return shown + matcher.flush(), matcher.stopped


def test_stop_string_split_across_pieces_is_cut_and_not_shown() -> None:
    assert _stream(["Hello <|", "im_", "end|> more"], ["<|im_end|>"]) == ("Hello ", True)


def test_held_back_tail_is_released_when_no_stop_follows() -> None:
    matcher = StopMatcher(["STOP"])
    assert matcher.feed("abc ST") == "abc "
    assert matcher.feed("AR") == "STAR"
    assert matcher.flush() == "" and not matcher.stopped


def test_earliest_of_several_stops_wins() -> None:
    assert _stream(["x END y STOP"], ["STOP", "END"]) == ("x ", True)


@given(st.text(max_size=40), st.lists(st.integers(0, 40), max_size=6), st.text(min_size=1, max_size=4))
def test_any_split_shows_the_text_before_the_first_stop(text: str, cuts: list[int], stop: str) -> None:
    bounds = sorted({min(c, len(text)) for c in cuts})
    pieces = [text[a:b] for a, b in zip([0, *bounds], [*bounds, len(text)], strict=True)]
    expected = text.split(stop, maxsplit=1)[0]
    assert _stream(pieces, [stop]) == (expected, stop in text)


@given(st.text(max_size=30), st.integers(1, 5))
def test_utf8_split_anywhere_decodes_whole(text: str, step: int) -> None:
    data = text.encode("utf-8")
    decoder = TokenTextDecoder()
    out = "".join(decoder.feed(data[i : i + step]) for i in range(0, len(data), step)) + decoder.flush()
    assert out == text


def test_truncated_utf8_at_end_becomes_replacement_character() -> None:
    decoder = TokenTextDecoder()
    assert decoder.feed("é".encode()[:1]) == "" and decoder.flush() == "\ufffd"
