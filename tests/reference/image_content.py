"""Synthetic pixel content of the test images (tests.reference.make_images): numpy + Pillow only, fixed seeds.

`photo` makes a photo-like RGB image (per-channel gradients and a low-frequency wave, large shapes, small details and
thin stripes, a cloud-textured lower third, optional Gaussian noise); the other helpers make the special-purpose
images (uniform noise, every uint8 value, RGBA with an alpha ramp, an explicit 64-colour palette, 16-bit grey,
GIF frames). Seeds come from the image name (zlib.crc32), so every image is reproducible on its own.
"""

from __future__ import annotations

import zlib

import numpy as np
from PIL import Image, ImageDraw


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


def _gradient_base(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Per-channel linear gradient plus one low-frequency wave, float32 HxWx3 in [0, 255]."""
    y = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :]
    out = np.empty((h, w, 3), dtype=np.float32)
    for c in range(3):
        c0, cx, cy, amp = rng.uniform(40, 200), rng.uniform(-90, 90), rng.uniform(-90, 90), rng.uniform(5, 30)
        fx, fy, phase = rng.uniform(0.3, 3), rng.uniform(0.3, 3), rng.uniform(0, 2 * np.pi)
        out[..., c] = c0 + cx * x + cy * y + amp * np.sin(np.float32(2 * np.pi) * (fx * x + fy * y) + phase)
    return out


def _clouds(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Smooth value-noise texture (a small random grid upscaled bicubically), float32 HxW in [-1, 1]."""
    grid = rng.uniform(0, 255, (max(2, h // 48 + 2), max(2, w // 48 + 2))).astype(np.uint8)
    up = Image.fromarray(grid, "L").resize((w, h), Image.Resampling.BICUBIC)
    return np.asarray(up, dtype=np.float32) / 127.5 - 1.0


def _draw_shapes(img: Image.Image, rng: np.random.Generator, count: int) -> None:
    w, h = img.size
    draw = ImageDraw.Draw(img)
    for _ in range(count):
        kind = int(rng.integers(0, 3))
        x0, x1 = sorted(rng.uniform(-0.1, 1.1, 2) * w)
        y0, y1 = sorted(rng.uniform(-0.1, 1.1, 2) * h)
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        outline = tuple(int(v) for v in rng.integers(0, 256, 3)) if rng.uniform() < 0.5 else None
        if kind == 0:
            draw.ellipse((x0, y0, x1, y1), fill=fill, outline=outline, width=max(1, w // 200))
        elif kind == 1:
            draw.rectangle((x0, y0, x1, y1), fill=fill, outline=outline)
        else:
            points = [(float(px * w), float(py * h)) for px, py in rng.uniform(0, 1, (5, 2))]
            draw.polygon(points, fill=fill, outline=outline)


def _draw_details(img: Image.Image, rng: np.random.Generator, count: int) -> None:
    """Small shapes and a block of thin stripes: high-frequency content that exercises the resize filter."""
    w, h = img.size
    draw = ImageDraw.Draw(img)
    for _ in range(count):
        cx, cy = rng.uniform(0, 1, 2) * (w, h)
        r = rng.uniform(0.005, 0.03) * max(w, h)
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    x0, y0 = int(w * 0.05), int(h * 0.05)
    for k in range(0, max(1, w // 5), 3):
        draw.line((x0 + k, y0, x0 + k, y0 + h // 6), fill=(250, 250, 250) if k % 2 else (10, 10, 10))


def photo(w: int, h: int, name: str, noise: float = 0.0) -> Image.Image:
    """Photo-like RGB image: gradients, shapes, a cloud-textured lower third and optional Gaussian noise."""
    rng = _rng(name)
    base = _gradient_base(rng, w, h)
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
    _draw_shapes(img, rng, count=14)
    _draw_details(img, rng, count=40)
    arr = np.asarray(img, dtype=np.float32).copy()
    ground = slice(2 * h // 3, h)
    arr[ground] += 40.0 * _clouds(rng, w, h)[ground][..., None]
    if noise > 0:
        arr += rng.normal(0.0, noise, arr.shape).astype(np.float32)
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "RGB")


def uniform_noise(w: int, h: int, name: str) -> Image.Image:
    return Image.fromarray(_rng(name).integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


def all_values(w: int, h: int) -> Image.Image:
    """Every uint8 value appears in every channel (R = i mod 256, G = 7i+3 mod 256, B = 255 - R)."""
    idx = np.arange(w * h, dtype=np.int64).reshape(h, w)
    rgb = np.stack([idx % 256, (7 * idx + 3) % 256, 255 - idx % 256], axis=-1)
    return Image.fromarray(rgb.astype(np.uint8), "RGB")


def rgba(w: int, h: int, name: str) -> Image.Image:
    """Alpha: horizontal ramp 0..255, a fully transparent band over coloured pixels, an opaque disc."""
    img = photo(w, h, name).convert("RGBA")
    alpha = np.tile(np.linspace(0, 255, w).round().astype(np.uint8), (h, 1))
    alpha[: h // 4] = 0
    mask = Image.fromarray(alpha, "L")
    ImageDraw.Draw(mask).ellipse((w * 0.55, h * 0.4, w * 0.9, h * 0.9), fill=255)
    img.putalpha(mask)
    return img


def palette_image(w: int, h: int, name: str) -> Image.Image:
    """Mode P with an explicit 64-colour palette (index = r//64*16 + g//64*4 + b//64)."""
    arr = np.asarray(photo(w, h, name), dtype=np.int32) // 64
    index = (arr[..., 0] * 16 + arr[..., 1] * 4 + arr[..., 2]).astype(np.uint8)
    img = Image.fromarray(index, "P")
    levels = [32, 96, 160, 224]
    img.putpalette([v for i in range(64) for v in (levels[i // 16], levels[i // 4 % 4], levels[i % 4])])
    return img


def i16_image(w: int, h: int) -> Image.Image:
    """16-bit grey: left half a 0..255 ramp, right half a 256..65535 ramp (load_image clips it to 255)."""
    left = np.rint(np.linspace(0, 255, w // 2))
    right = np.rint(np.linspace(256, 65535, w - w // 2))
    row = np.concatenate([left, right]).astype(np.uint16)
    arr = np.tile(row, (h, 1))
    arr[h // 2 :] = arr[h // 2 :, ::-1]
    return Image.fromarray(arr)  # mode I;16


def gif_frames(w: int, h: int, name: str) -> list[Image.Image]:
    frames = []
    for k in range(3):
        frame = palette_image(w, h, f"{name}#{k}")
        ImageDraw.Draw(frame).rectangle((10 + 30 * k, 10, 40 + 30 * k, 40), fill=63 - k)
        frames.append(frame)
    return frames
