"""Which image-processor settings a model pair gets, and from where: the best source available, in this order.

1. ``mmproj``: the ``lfm_edge.processor.*`` keys lfm_edge's converter writes into the mmproj.
2. ``processor_config``: ``processor_config.json`` / ``preprocessor_config.json`` beside the GGUF files.
3. ``hub``: for GGUF files from a Hugging Face Hub GGUF repo, the processor config of the original model repo it
   was made from (``general.base_model.0.repo_url``, else the repo id without ``-GGUF``), read from the local
   cache first and downloaded at most once (two small JSON files, 10 s timeout), never with ``HF_HUB_OFFLINE=1``.
4. ``table``: the official model recognised from the GGUF itself (lfm_edge.image.family).
5. ``defaults``: LFM2.5-VL-450M's settings, with a warning naming the model and the knobs to pass.

A processor config beside the files that disagrees with the mmproj's own keys is a warning naming both values; one
that is malformed, or contradicts the mmproj (patch size, downsample factor), is a ConfigError naming file and key.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lfm_edge import hub_config
from lfm_edge.errors import ConfigError
from lfm_edge.gguf_keys import PREFIX
from lfm_edge.image import family
from lfm_edge.image.settings import ProcessorSettings
from lfm_edge.mmproj import mmproj_signature

if TYPE_CHECKING:
    from lfm_edge.resolve import ModelFiles

log = logging.getLogger(__name__)

CONFIG_FILES = ("preprocessor_config.json", "processor_config.json")  # later files win, as transformers merges them
# Knobs that describe the image layout; a config holding none of them says nothing about it.
_LAYOUT_KNOBS = frozenset(f.name for f in fields(ProcessorSettings)) - {"use_image_special_tokens"}
# processor-config key -> mmproj key that fixes it (the vision encoder was built for exactly this value).
_FIXED_BY_MMPROJ = {
    "encoder_patch_size": "clip.vision.patch_size",
    "downsample_factor": "clip.vision.projector.scale_factor",
}


@dataclass(frozen=True)
class SettingsSource:
    """Where the settings came from: ``kind`` is one of mmproj, processor_config, hub, table, defaults."""

    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} ({self.detail})"


@dataclass(frozen=True)
class ResolvedSettings:
    settings: ProcessorSettings
    source: SettingsSource
    model: str | None = None  # the official model it was recognised as, if any


def resolve_settings(files: ModelFiles, mmproj: Mapping[str, Any] | None) -> ResolvedSettings:
    """The settings for a model pair whose mmproj metadata (read_gguf_metadata) is ``mmproj``; logs the source."""
    resolved = _resolve(files, mmproj)
    log.info("image processor settings from %s: %s", resolved.source, _knob_text(resolved.settings))
    return resolved


def _resolve(files: ModelFiles, mmproj: Mapping[str, Any] | None) -> ResolvedSettings:
    if mmproj is None or files.mmproj is None:
        return ResolvedSettings(ProcessorSettings(), SettingsSource("defaults", "no mmproj: text only"))
    beside = read_config_folder(files.mmproj.parent, mmproj)
    if any(key.startswith(PREFIX) for key in mmproj):
        settings = ProcessorSettings.from_gguf_metadata(mmproj)
        if beside is not None:
            _warn_mismatch(settings, beside, files.mmproj)
        return ResolvedSettings(settings, SettingsSource("mmproj", f"{PREFIX}* keys of {files.mmproj.name}"))
    if beside is not None:
        return ResolvedSettings(beside[0], SettingsSource("processor_config", str(beside[1])))
    from_hub = _from_hub(files, mmproj)
    if from_hub is not None:
        return from_hub
    return _from_table(files, mmproj, _names(files, mmproj))


def read_config_folder(folder: Path, mmproj: Mapping[str, Any]) -> tuple[ProcessorSettings, Path] | None:
    """Settings from the processor config files in a folder, or None when it holds no layout knob."""
    sections: list[tuple[Path, Mapping[str, Any]]] = []
    for name in CONFIG_FILES:
        path = folder / name
        if path.is_file():
            sections.append((path, _read_json(path)))
    if not sections:
        return None
    merged: dict[str, Any] = {}
    for path, config in sections:
        section = _settings_section(path, config)
        _check_against_mmproj(path, section, mmproj)
        try:  # alone first, so that an error names the file
            ProcessorSettings.from_processor_config(section)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        merged.update(section)
    if not _LAYOUT_KNOBS & {key for key, value in merged.items() if value is not None}:
        return None
    try:
        settings = ProcessorSettings.from_processor_config(merged)
    except ConfigError as exc:
        raise ConfigError(f"{' + '.join(str(p) for p, _ in sections)}: {exc}") from exc
    return settings, sections[-1][0]


def _read_json(path: Path) -> Mapping[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}): fix it or remove it"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} cannot be read ({exc}): fix its permissions or remove it") from exc
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path} must hold a JSON object, not {type(data).__name__}: fix it or remove it")
    return data


def _settings_section(path: Path, config: Mapping[str, Any]) -> dict[str, Any]:
    """The knobs of one file: LFM2.5's ``image_processor`` section or LFM2-VL's flat layout."""
    section = config.get("image_processor", config)
    if not isinstance(section, Mapping):
        raise ConfigError(f"{path}: key 'image_processor' must be an object, not {type(section).__name__}")
    if str(section.get("image_processor_type", "")).startswith("Siglip2"):
        # LFM2-VL-450M's old preprocessor_config.json configures SigLIP2's own processor: normalisation only.
        section = {key: section[key] for key in ("image_mean", "image_std", "rescale_factor") if key in section}
    values = dict(section)
    if "use_image_special_tokens" not in values and "use_image_special_tokens" in config:
        values["use_image_special_tokens"] = config["use_image_special_tokens"]
    return values


def _check_against_mmproj(path: Path, section: Mapping[str, Any], mmproj: Mapping[str, Any]) -> None:
    for key, mmproj_key in _FIXED_BY_MMPROJ.items():
        value, fixed = section.get(key), mmproj.get(mmproj_key)
        if value is not None and fixed is not None and value != int(fixed):
            raise ConfigError(
                f"{path}: {key}={value!r} contradicts the mmproj, whose {mmproj_key} is {int(fixed)}: this config "
                "belongs to another model; fix the key or remove the file"
            )


def _warn_mismatch(settings: ProcessorSettings, beside: tuple[ProcessorSettings, Path], mmproj: Path) -> None:
    other, path = beside
    for knob in sorted(_LAYOUT_KNOBS | {"use_image_special_tokens"}):
        ours, theirs = getattr(settings, knob), getattr(other, knob)
        if ours != theirs:
            log.warning(
                "%s says %s=%r but %s beside it says %s=%r; using the mmproj's value (pass %s=... to override)",
                mmproj.name, knob, ours, path, knob, theirs, knob,
            )  # fmt: skip


def _from_hub(files: ModelFiles, mmproj: Mapping[str, Any]) -> ResolvedSettings | None:
    assert files.mmproj is not None
    located = hub_config.locate(files.mmproj)
    if located is None:
        return None
    original = hub_config.original_repo(located.repo, mmproj)
    if original is None:
        return None
    folder = hub_config.fetch_configs(original, located.cache_dir, CONFIG_FILES)
    if folder is None:
        return None
    try:
        found = read_config_folder(folder, mmproj)
    except ConfigError as exc:  # a remote file must not stop the model from loading: fall back, loudly
        log.warning("ignoring the processor config of %s: %s", original, exc)
        return None
    if found is None:
        return None
    return ResolvedSettings(found[0], SettingsSource("hub", f"{original}: {found[1].name}, original of {located.repo}"))


def _names(files: ModelFiles, mmproj: Mapping[str, Any]) -> list[str]:
    """Every name the files give themselves, most specific first."""
    names = [str(mmproj[key]) for key in ("general.name",) if mmproj.get(key)]
    basename, size = mmproj.get("general.basename"), mmproj.get("general.size_label")
    if basename:
        names.append(f"{basename}-{size}" if size else str(basename))
    names += [str(v) for k, v in sorted(mmproj.items()) if k.startswith("general.base_model.") and k.endswith("name")]
    names += [str(v) for k, v in sorted(mmproj.items()) if k.startswith("general.base_model.") and k.endswith("url")]
    assert files.mmproj is not None
    names += [files.mmproj.name, files.text.name]
    located = hub_config.locate(files.mmproj)
    if located is not None:
        names.append(located.repo)
    return names


def _from_table(files: ModelFiles, mmproj: Mapping[str, Any], names: list[str]) -> ResolvedSettings:
    named = family.by_name(names)
    if named is not None:
        model, name = named
        source = SettingsSource("table", f"{model.name}, recognised by the name {name!r}")
        return ResolvedSettings(model.settings, source, model.name)
    assert files.mmproj is not None
    signature = mmproj_signature(files.mmproj, mmproj)
    matched = family.by_signature(signature) if signature is not None else None
    if matched is not None:
        source = SettingsSource("table", f"{matched.name}, recognised by its structure {signature}")
        return ResolvedSettings(matched.settings, source, matched.name)
    _warn_defaults(files.mmproj, names, family.unsourced(names))
    return ResolvedSettings(ProcessorSettings(), SettingsSource("defaults", "model not recognised"))


def _warn_defaults(mmproj: Path, names: list[str], left_out: str | None) -> None:
    why = f" ({left_out})" if left_out else ""
    log.warning(
        "cannot tell the image settings of %r%s: %s has no %s* keys, no processor_config.json is beside it, and it "
        "is none of the official models lfm_edge knows (%s). Using LFM2.5-VL-450M's settings (%s). If this model's "
        "processor_config.json says otherwise, put it beside the GGUF files, or pass the knobs (Python: "
        "model.image_settings(use_thumbnail=..., min_image_tokens=..., max_image_tokens=..., min_tiles=..., "
        "max_tiles=..., tile_size=..., max_pixels_tolerance=..., do_image_splitting=...); CLI: --min-image-tokens, "
        "--max-image-tokens, --max-tiles, --no-splitting)",
        names[0], why, mmproj.name, PREFIX, ", ".join(m.name for m in family.FAMILY),
        _knob_text(ProcessorSettings()),
    )  # fmt: skip


def _knob_text(settings: ProcessorSettings) -> str:
    return ", ".join(f"{f.name}={getattr(settings, f.name)!r}" for f in fields(settings))
