"""Find ``spark.toml`` and its profile files, read them, and assemble :class:`Settings`.

This is the shell that touches the file system and the environment; the schema (schema.py),
precedence (sources.py), assembly (assemble.py) and wording of problems (problems.py) are pure.
Every problem found on the way is collected, and one :class:`ConfigError` lists them all.
"""

from __future__ import annotations

import copy
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from spark.cache.config import CACHE_ALIASES
from spark.config.assemble import Resolution, check_profile, layers_for, resolve_profile
from spark.config.problems import (
    format_validation_error,
    invalid_locations,
    problem_message,
    show_value,
)
from spark.config.readers import read_toml
from spark.config.schema import CacheTable, ProfileDocument, SparkDocument
from spark.config.settings import Settings
from spark.config.sources import ArgumentSource, EnvSource, toml_key
from spark.errors import ConfigError

__all__ = ["CONFIG_FILE_NAME", "PROFILE_DIR_NAME", "find_config_file", "load_settings"]

CONFIG_FILE_NAME = "spark.toml"
PROFILE_DIR_NAME = "profiles"


@dataclass
class _Files:
    """What was read: the validated spark.toml, the profile files, the keys dropped as invalid."""

    path: Path | None
    base: dict[str, Any] = field(default_factory=dict)
    profile_files: dict[str, dict[str, Any]] = field(default_factory=dict)
    invalid: set[tuple[str, ...]] = field(default_factory=set)

    @property
    def label(self) -> str:
        """How problems and provenance name the main file (``spark.toml``)."""
        return self.path.name if self.path else CONFIG_FILE_NAME

    @property
    def profile_names(self) -> list[str]:
        """Every profile: the ``[profiles.*]`` tables and the ``profiles/*.toml`` files."""
        return sorted({*self.base.get("profiles", {}), *self.profile_files})


def load_settings(
    path: str | Path | None = None,
    profile: str | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Load and validate the settings of the active profile.

    ``path`` is spark.toml (or its directory); None: ``$SPARK_CONFIG``, else the first
    ``spark.toml`` in the current directory or its parents, else built-in defaults only.
    ``profile`` wins over ``$ENVIRONMENT``, which wins over ``[spark] default_profile``.
    ``env`` replaces ``os.environ`` (for tests); ``overrides`` are explicit cache settings
    (``enabled``, ``dir``/``cache_dir``, ``ttl_seconds``, ...) that win over everything; a None
    value is the same as not given. Raises :class:`ConfigError` listing every problem.
    """
    environ: Mapping[str, str] = dict(os.environ) if env is None else dict(env)
    cwd = Path.cwd()
    problems: list[str] = []
    files = _read_files(_find_config_file(path, environ, cwd, problems), problems)
    name, name_source = _choose_profile(profile, environ, files, problems)
    env_source = EnvSource(environ, cwd)
    problems += env_source.problems
    arguments = ArgumentSource(_validated_overrides(overrides or {}, problems), cwd)

    def resolution_of(profile_name: str) -> Resolution:
        layers = layers_for(
            files.base, files.profile_files, profile_name, files.label, _base_dir(files, cwd)
        )
        return resolve_profile(layers, environ, env_source, arguments)

    active = resolution_of(name)
    problems += check_profile(active, files.invalid)
    deferred = [
        problem
        for other in files.profile_names
        if other != name
        for problem in check_profile(resolution_of(other), files.invalid)
    ]
    if problems:  # (the other profiles' problems go along: `spark config validate` lists all)
        elsewhere = [p for p in dict.fromkeys(deferred) if p not in problems]
        raise ConfigError(problem_message(problems), problems, elsewhere)
    return Settings(
        path=files.path,
        profile=name,
        profile_source=name_source,
        profiles=files.profile_names,
        model_aliases=list(active.model_values),
        pricing=active.pricing,
        warnings=_key_warnings(active, environ),
        cache_values=active.cache_values,
        model_values=active.model_values,
        deferred_problems=list(dict.fromkeys(deferred)),
        telemetry=active.telemetry,
    )


def find_config_file(
    path: str | Path | None = None, env: Mapping[str, str] | None = None
) -> Path | None:
    """The spark.toml to use: ``path``, else ``$SPARK_CONFIG``, else a search upwards from the CWD.

    None when searching finds nothing (the built-in defaults apply); a :class:`ConfigError`
    when ``path`` or ``$SPARK_CONFIG`` names a file that does not exist.
    """
    problems: list[str] = []
    found = _find_config_file(path, os.environ if env is None else env, Path.cwd(), problems)
    if problems:
        raise ConfigError(problem_message(problems), problems)
    return found


def _find_config_file(
    path: str | Path | None, env: Mapping[str, str], cwd: Path, problems: list[str]
) -> Path | None:
    named, where = (
        (path, "argument path") if path else (env.get("SPARK_CONFIG"), "env SPARK_CONFIG")
    )
    if named:
        candidate = (cwd / Path(named).expanduser()).absolute()
        if candidate.is_dir():
            candidate = candidate / CONFIG_FILE_NAME
        if candidate.is_file():
            return candidate
        problems.append(f"{where}: no such file: {candidate}")
        return None
    for directory in (cwd, *cwd.parents):
        if (directory / CONFIG_FILE_NAME).is_file():
            return (directory / CONFIG_FILE_NAME).absolute()
    return None


def _base_dir(files: _Files, cwd: Path) -> Path:
    """Relative paths of spark.toml *and of its profile files* are relative to its directory."""
    return files.path.parent if files.path else cwd


def _read_files(path: Path | None, problems: list[str]) -> _Files:
    files = _Files(path)
    if path is None:
        return files
    files.base = _read_document(path, files.label, SparkDocument, files.invalid, problems)
    for profile_path in sorted((path.parent / PROFILE_DIR_NAME).glob("*.toml")):
        label = f"{PROFILE_DIR_NAME}/{profile_path.name}"
        document = _read_document(profile_path, label, ProfileDocument, files.invalid, problems)
        files.profile_files[profile_path.stem] = document
    return files


def _read_document(
    path: Path,
    label: str,
    schema: type[BaseModel],
    invalid: set[tuple[str, ...]],
    problems: list[str],
) -> dict[str, Any]:
    """The validated content of one TOML file; invalid keys are reported and dropped."""
    try:
        data = read_toml(path)
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"{label}: invalid TOML: {exc}")
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{label}: cannot read {path}: {exc}")
        return {}
    return _validated(data, label, schema, invalid, problems)


def _validated(
    data: dict[str, Any],
    label: str,
    schema: type[BaseModel],
    invalid: set[tuple[str, ...]],
    problems: list[str],
) -> dict[str, Any]:
    """Validate ``data``, dropping what is invalid so the rest can still be checked and used.

    Rejected alternative: stop at the first invalid file. Dropping the bad keys lets one run
    report the typos, the unknown ENVIRONMENT and the bad environment variables together.
    """
    data = copy.deepcopy(data)
    for attempt in range(3):
        try:
            return schema.model_validate(data).model_dump(exclude_unset=True)
        except ValidationError as exc:
            # The first round reports everything; later ones only find the tables whose
            # required keys were dropped, and drop them too.
            if attempt == 0:
                problems.extend(format_validation_error(exc, label, schema, data))
            for loc in invalid_locations(exc):
                _drop(data, loc)
                invalid.add((label, *loc))
    return {}


def _drop(data: dict[str, Any], loc: tuple[str, ...]) -> None:
    if not loc:
        data.clear()
        return
    node: Any = data
    for part in loc[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(loc[-1], None)


def _choose_profile(
    explicit: str | None, env: Mapping[str, str], files: _Files, problems: list[str]
) -> tuple[str, str]:
    """The active profile and what chose it; an unknown name is a problem (no overlay then).

    Without a spark.toml, ``ENVIRONMENT`` is ignored: it is a common variable that other tools
    set, and there is no profile it could select.
    """
    default = files.base.get("spark", {}).get("default_profile")
    candidates = [
        (explicit, "argument", "argument profile:"),
        (
            env.get("ENVIRONMENT", "").strip() if files.path else None,
            "env ENVIRONMENT",
            "env ENVIRONMENT:",
        ),
        (
            default,
            f"{files.label} [spark] default_profile",
            f"{files.label}: [spark] default_profile:",
        ),
    ]
    for name, source, where in candidates:
        if not name:
            continue
        if name in files.profile_names or name == "default":
            return name, source
        known = ", ".join(files.profile_names) or "(none defined)"
        problems.append(
            f"{where} unknown profile {show_value(name)}; known profiles: {known}"
            f" (a profile is a [profiles.{toml_key(name)}] table"
            f" or a {PROFILE_DIR_NAME}/{name}.toml file)"
        )
        break
    return "default", "default"


def _validated_overrides(overrides: Mapping[str, Any], problems: list[str]) -> dict[str, Any]:
    """Explicit cache arguments (``cache_dir`` meaning ``dir``, as for ``CacheConfig``),
    checked like a ``[cache]`` table. Given with its new name, the old name wins, whatever the
    order of the arguments (as in ``CacheConfig``; docs/configuration.md)."""
    given = {key: value for key, value in overrides.items() if value is not None}
    old = {CACHE_ALIASES[key]: value for key, value in given.items() if key in CACHE_ALIASES}
    values = {key: value for key, value in given.items() if key not in CACHE_ALIASES} | old
    try:
        CacheTable.model_validate(values)
    except ValidationError as exc:
        problems.extend(format_validation_error(exc, "argument", CacheTable, values))
        dropped = {loc[0] for loc in invalid_locations(exc) if loc}
        return {key: value for key, value in values.items() if key not in dropped}
    return values


def _key_warnings(resolution: Resolution, env: Mapping[str, str]) -> list[str]:
    """Encrypted caches whose key is not there (yet): neither the variable nor the key file."""
    missing: dict[tuple[str, Path | None], list[str]] = {}
    for target, values in resolution.cache_values.items():
        if not (values["enabled"].value and values["encrypt"].value):
            continue
        key_env, key_file = values["key_env"].value, values["key_file"].value
        if (key_env and env.get(key_env)) or (key_file and Path(key_file).is_file()):
            continue
        if key_env or key_file:  # neither at all is a problem, reported by check_profile
            table = "[cache]" if target is None else f"[models.{toml_key(target)}]"
            missing.setdefault((key_env, key_file), []).append(table)
    warnings = []
    for (key_env, key_file), tables in missing.items():
        looked = [f"environment variable {key_env} is not set"] if key_env else []
        looked.append(f"key file {key_file} does not exist" if key_file else "no key_file is set")
        warnings.append(
            f"encryption is on for {', '.join(tables)} but no key was found: {' and '.join(looked)}"
        )
    return warnings
