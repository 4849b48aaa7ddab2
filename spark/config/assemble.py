"""Assemble one profile: stack its document layers, resolve every value, and check the result.

Pure: takes already-read documents and returns values and problem lines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from spark.cache.config import combined_problems, default_cache_dir
from spark.config.schema import KNOWN_PROVIDERS
from spark.config.settings import MODEL_OPTION_KEYS, TELEMETRY_DEFAULT, Price
from spark.config.sources import (
    DocumentLayer,
    ResolvedValue,
    Source,
    TableSource,
    cache_sources,
    deep_merge,
    model_sources,
    resolve,
)
from spark.models.registry import provider_options

__all__ = ["Resolution", "check_profile", "layers_for", "resolve_profile"]

_PROFILE_FILE = "profiles/{name}.toml"


@dataclass(frozen=True)
class Resolution:
    """One profile resolved: cache rules per target (None: ``[cache]``), models, prices, and
    whether its models emit telemetry (``[telemetry] enabled``)."""

    layers: tuple[DocumentLayer, ...]
    cache_values: dict[str | None, dict[str, ResolvedValue]]
    model_values: dict[str, dict[str, ResolvedValue]]
    pricing: dict[str, Price]
    telemetry: ResolvedValue = TELEMETRY_DEFAULT
    env_rejected: frozenset[str] = frozenset()  # cache keys of SPARK_* variables refused


def layers_for(
    base: Mapping[str, Any],
    profile_files: Mapping[str, Mapping[str, Any]],
    name: str,
    label: str,
    base_dir: Path,
) -> tuple[DocumentLayer, ...]:
    """The document layers of profile ``name``, lowest first.

    spark.toml, then its ``[profiles.<name>]`` table, then ``profiles/<name>.toml``. All of
    them resolve relative paths against ``base_dir``, the directory of spark.toml (a profile
    file lives one level down, but its paths mean the same as in the table it replaces).
    """
    layers = [DocumentLayer(base, label, base_dir)]
    table = base.get("profiles", {}).get(name)
    if table is not None:
        layers.append(DocumentLayer(table, label, base_dir, ("profiles", name)))
    if name in profile_files:
        layers.append(DocumentLayer(profile_files[name], _PROFILE_FILE.format(name=name), base_dir))
    return tuple(layers)


def resolve_profile(
    layers: Sequence[DocumentLayer],
    env: Mapping[str, str],
    env_source: Source,
    arguments: Source,
) -> Resolution:
    """Resolve the ``[cache]`` rules, every alias's cache rules and model fields, and prices."""
    aliases = list(dict.fromkeys(a for layer in layers for a in layer.table(("models",))))
    cache_values = {
        target: _resolve_cache(cache_sources(layers, target, env, env_source, arguments), env)
        for target in (None, *aliases)
    }
    model_values = {alias: resolve(model_sources(layers, alias)) for alias in aliases}
    return Resolution(
        tuple(layers),
        cache_values,
        model_values,
        _pricing(layers),
        _telemetry(layers),
        env_source.rejected,
    )


def _telemetry(layers: Sequence[DocumentLayer]) -> ResolvedValue:
    """``[telemetry] enabled`` of the last layer that sets it (default: on)."""
    values = resolve([TableSource(layer, ("telemetry",)) for layer in layers], "telemetry.")
    return values.get("enabled", TELEMETRY_DEFAULT)


def _resolve_cache(sources: Sequence[Source], env: Mapping[str, str]) -> dict[str, ResolvedValue]:
    values = resolve(sources, prefix="cache.")
    if values["dir"].value is None:  # `dir = ""` asks for the default directory
        values["dir"] = replace(values["dir"], value=default_cache_dir(env))
    return values


def _pricing(layers: Sequence[DocumentLayer]) -> dict[str, Price]:
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = deep_merge(merged, layer.table(("pricing",)))
    return {model_id: _price(entry) for model_id, entry in merged.items()}


def _price(entry: Mapping[str, Any]) -> Price:
    """One ``[pricing."<id>"]`` table as a ``Price`` (cache rates None when not given)."""
    read, write = entry.get("cache_read"), entry.get("cache_write")
    return Price(
        float(entry["input"]),
        float(entry["output"]),
        entry.get("as_of"),
        None if read is None else float(read),
        None if write is None else float(write),
    )


def check_profile(resolution: Resolution, invalid: set[tuple[str, ...]]) -> list[str]:
    """Problems of a merged profile: incomplete aliases, encryption without any key source.

    ``invalid`` holds ``(file, *key path)`` of keys already reported as invalid: a rejected
    ``provider`` is not reported a second time as missing.
    """
    problems = _incomplete_models(resolution, invalid) + _foreign_options(resolution)
    problems += _no_key_source(resolution) + _combined_problems(resolution, invalid)
    return list(dict.fromkeys(problems))


def _incomplete_models(resolution: Resolution, invalid: set[tuple[str, ...]]) -> list[str]:
    problems = []
    for alias, values in resolution.model_values.items():
        path = ("models", alias)
        home = next(layer for layer in resolution.layers if alias in layer.table(("models",)))
        for key in ("provider", "model_id"):
            rejected = any(
                (layer.file, *layer.prefix, *path, key) in invalid for layer in resolution.layers
            )
            if key not in values and not rejected:
                problems.append(f"{_where(home.label(path))} {key}: required ({_REQUIRED[key]})")
    return problems


def _foreign_options(resolution: Resolution) -> list[str]:
    """Options the alias's provider does not take (``region`` on OpenAI, ``api`` on Bedrock):
    found here, with the table that set each, rather than when the model is built."""
    problems = []
    for values in resolution.model_values.values():
        provider = values.get("provider")
        if provider is None or provider.value not in KNOWN_PROVIDERS:
            continue  # missing or unknown: reported on its own
        takes = [key for key in MODEL_OPTION_KEYS if key in provider_options(provider.value)]
        for key in MODEL_OPTION_KEYS:
            if key in values and key not in takes:
                problems.append(
                    f"{_where(values[key].source)} {key}: not an option of provider"
                    f" {provider.value!r} (its options: {', '.join(takes) or 'none'})"
                )
    return problems


_REQUIRED = {
    "provider": "one of " + ", ".join(sorted(KNOWN_PROVIDERS)),
    "model_id": 'the provider\'s model name, e.g. "gpt-4o"',
}


def _no_key_source(resolution: Resolution) -> list[str]:
    problems = []
    for values in resolution.cache_values.values():
        on = values["enabled"].value and values["encrypt"].value
        if on and not values["key_env"].value and not values["key_file"].value:
            problems.append(
                f"{_where(values['encrypt'].source)} encrypt: true but there is no key source"
                " (key_env is empty and no key_file is set)"
            )
    return problems


def _combined_problems(resolution: Resolution, invalid: set[tuple[str, ...]]) -> list[str]:
    """The rules of several settings (``backend = "redis"`` needs a ``url``), each blamed on
    the table that set the key it names; a rule reading a key already rejected is left out."""
    return [
        _blame(values[key].source, key) + problem
        for target, values in resolution.cache_values.items()
        for key, problem in combined_problems(
            {k: v.value for k, v in values.items()}, _rejected(resolution, invalid, target)
        )
    ]


def _rejected(
    resolution: Resolution, invalid: set[tuple[str, ...]], target: str | None
) -> frozenset[str]:
    """The cache keys of ``target`` (None: ``[cache]``) whose last setting, in the order of
    precedence, was a value already reported as invalid (a valid one above it makes the key
    known again)."""
    rejected: set[str] = set()
    tables = [("cache",)] if target is None else [("cache",), ("models", target, "cache")]
    for table in tables:  # ([cache] of every layer, then the alias's table of every layer)
        for layer in resolution.layers:
            where = (layer.file, *layer.prefix, *table)
            rejected |= {found[-1] for found in invalid if found[:-1] == where}
            rejected -= {key for key in layer.table(table) if (*where, key) not in invalid}
    values = resolution.cache_values[target]
    overridden = {key for key in rejected if key in values and _outside_files(values[key].source)}
    # (a variable refused, with nothing else setting its key: a rule reading it would repeat it)
    refused = {
        key
        for key in resolution.env_rejected
        if key not in values or values[key].source == "default"
    }
    return frozenset((rejected - overridden) | refused)


def _outside_files(source: str) -> bool:
    """Whether a value came from the environment or an argument (above every file)."""
    return source.startswith(("env ", "argument"))


def _blame(source: str, key: str) -> str:
    """``env SPARK_CACHE_BACKEND: `` (the variable names the key), else ``<table> key: ``."""
    return f"{source}: " if source.startswith("env ") else f"{_where(source)} {key}: "


def _where(source: str) -> str:
    """A provenance label as a problem line's start: ``a.toml [cache]`` -> ``a.toml: [cache]``."""
    file, bracket, table = source.partition(" [")
    return f"{file}: [{table}" if bracket else f"{source}:"
