"""draw_boxes (issue E): outlines and labels in distinct colours on the upright image, written atomically as PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from lfm_edge.errors import ConfigError, ImageError
from lfm_edge.parse import Box, box_colour, draw_boxes, parse_detections

GREY = (128, 128, 128)
WIDTH, HEIGHT = 200, 100


def _grey_png(folder: Path, size: tuple[int, int] = (WIDTH, HEIGHT)) -> Path:
    path = folder / "grey.png"
    Image.new("RGB", size, GREY).save(path)
    return path


def _read_back(path: Path) -> npt.NDArray[np.uint8]:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


def _colour(pixels: npt.NDArray[np.uint8], x: int, y: int) -> tuple[int, ...]:
    return tuple(int(value) for value in pixels[y, x])


def test_outlines_have_the_box_colour_and_nothing_else_changes(tmp_path: Path) -> None:
    boxes = [Box("cat", 20, 30, 120, 80, WIDTH, HEIGHT), Box("", 140.4, 10.6, 190, 60.2, WIDTH, HEIGHT)]
    out = draw_boxes(_grey_png(tmp_path), boxes, tmp_path / "out.png", line_width=2)
    assert out == tmp_path / "out.png"
    pixels = _read_back(out)
    assert pixels.shape == (HEIGHT, WIDTH, 3)
    first, second = box_colour(0), box_colour(1)
    assert first != second and GREY not in (first, second)
    # The outline covers the box's own pixels, [x1, x2) x [y1, y2), drawn inwards line_width pixels.
    for x, y in [(20, 55), (21, 55), (119, 55), (118, 55), (70, 30), (70, 31), (70, 79), (70, 78), (20, 30)]:
        assert _colour(pixels, x, y) == first, (x, y)
    for x, y in [(140, 35), (189, 35), (165, 10), (165, 60)]:
        assert _colour(pixels, x, y) == second, (x, y)
    # Well inside, just outside and far outside stay grey (the label tag sits above the first box's corner).
    for x, y in [(70, 55), (22, 55), (117, 55), (19, 55), (120, 55), (70, 81), (10, 90), (130, 95), (165, 35)]:
        assert _colour(pixels, x, y) == GREY, (x, y)
    for x, y in [(139, 35), (190, 35), (165, 9), (165, 61)]:
        assert _colour(pixels, x, y) == GREY, (x, y)


def test_label_tag_above_the_box_holds_text(tmp_path: Path) -> None:
    out = draw_boxes(_grey_png(tmp_path), [Box("dog", 20, 50, 120, 90, WIDTH, HEIGHT)], tmp_path / "o.png")
    tag = _read_back(out)[30:50, 20:60].reshape(-1, 3)
    colours = {tuple(int(value) for value in pixel) for pixel in tag}
    assert box_colour(0) in colours
    assert len(colours - {box_colour(0), GREY}) >= 1  # the text, anti-aliased


def test_boxes_at_the_image_border_stay_inside(tmp_path: Path) -> None:
    box = Box("everything", 0, 0, WIDTH, HEIGHT, WIDTH, HEIGHT)
    pixels = _read_back(draw_boxes(np.full((HEIGHT, WIDTH, 3), 128, np.uint8), [box], tmp_path / "b.png"))
    assert _colour(pixels, WIDTH - 1, HEIGHT - 1) == box_colour(0)
    assert _colour(pixels, WIDTH - 1, 50) == box_colour(0)
    assert _colour(pixels, WIDTH // 2, HEIGHT // 2) == GREY


def test_parsed_detections_and_odd_labels_draw(tmp_path: Path) -> None:
    answer = '[{"label": "猫 \\u00e9\\n\\ttab", "bbox": [0.1, 0.2, 0.5, 0.9]}, {"label": "' + "x" * 300 + '", '
    answer += '"bbox": [0.6, 0.1, 0.9, 0.5]}]'
    detection = parse_detections(answer, (WIDTH, HEIGHT))
    assert len(detection.boxes) == 2
    pixels = _read_back(draw_boxes(_grey_png(tmp_path), detection.boxes, tmp_path / "d.png"))
    assert _colour(pixels, 20, 60) == box_colour(0)
    assert _colour(pixels, 120, 30) == box_colour(1)
    assert _colour(pixels, 150, 30) == GREY


def test_no_boxes_copies_the_image(tmp_path: Path) -> None:
    pixels = _read_back(draw_boxes(_grey_png(tmp_path), [], tmp_path / "none.png"))
    assert (pixels == 128).all()


def test_exif_rotated_jpeg_gives_the_upright_size(tmp_path: Path) -> None:
    stored = Image.new("RGB", (60, 40), GREY)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    jpeg = tmp_path / "rotated.jpg"
    stored.save(jpeg, exif=exif.tobytes())
    out = draw_boxes(jpeg, [Box("upright", 5, 5, 30, 50, 40, 60)], tmp_path / "rotated.png")
    with Image.open(out) as image:
        assert image.size == (40, 60)
    with pytest.raises(ConfigError, match="40x60"):
        draw_boxes(jpeg, [Box("stored size", 5, 5, 30, 30, 60, 40)], tmp_path / "wrong.png")


def test_colours_are_distinct() -> None:
    colours = [box_colour(index) for index in range(40)]
    assert len(set(colours)) == 40
    assert all(0 <= channel <= 255 for colour in colours for channel in colour)


def test_writes_atomically_and_overwrites(tmp_path: Path) -> None:
    image = _grey_png(tmp_path)
    target = tmp_path / "sub" / "out.png"
    draw_boxes(image, [Box("a", 1, 1, 50, 50, WIDTH, HEIGHT)], target)
    draw_boxes(image, [], target)
    assert (_read_back(target) == 128).all()
    assert sorted(path.name for path in target.parent.iterdir()) == ["out.png"]  # no temporary file left


def test_bad_paths_and_arguments_raise_typed_errors(tmp_path: Path) -> None:
    image = _grey_png(tmp_path)
    with pytest.raises(ImageError, match="does not exist"):
        draw_boxes(tmp_path / "missing.jpg", [], tmp_path / "x.png")
    with pytest.raises(ImageError):
        draw_boxes(b"not an image", [], tmp_path / "x.png")
    with pytest.raises(ConfigError, match=r"\.png"):
        draw_boxes(image, [], tmp_path / "x.jpg")
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(ConfigError, match="folder"):
        draw_boxes(image, [], tmp_path / "folder.png")
    with pytest.raises(ConfigError, match="writable"):
        draw_boxes(image, [], image / "under_a_file.png")
    with pytest.raises(ConfigError, match="line_width"):
        draw_boxes(image, [], tmp_path / "x.png", line_width=0)
    with pytest.raises(ConfigError, match="not a Box"):
        draw_boxes(image, [(0, 0, 10, 10)], tmp_path / "x.png")  # type: ignore[list-item]
    assert not (tmp_path / "x.png").exists()
