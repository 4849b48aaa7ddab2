"""A hostile cache directory cannot act on the terminal of whoever inspects it.

A committed cache comes from anyone who can push: its file and folder names, an entry's metadata,
its stored request and its answer are data. Each command that shows them (``verify``, ``ls``,
``stats``, ``show``, ``explain``, ``cleanup``) and replay's error show every character that
would act on a terminal (escape sequences that retitle it or erase the line reporting the file,
a carriage return, a C1 control, a bidirectional override, a line separator) as its ``\\uXXXX``
escape, and still name each bad file. ``--json`` output reads back as the original text.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from _fuzzlib import GPT, entry_path, plant, run_cli, seed_cache, verify_named

from spark.cache import CacheConfig, CacheManager
from spark.errors import CacheMissError

# Retitle the terminal, erase the current line, return to column 0, a C1 CSI, an RTL override,
# a line separator: each one acts when printed raw.
ACTING = "\x1b]0;owned\x07\x1b[2K\r\x9b31m\u202egnp.\u2028"
ACTING_CHARS = "\x1b\x07\r\x9b\u202e\u2028"
# The request that misses: the nearest entry is the one whose request has the acting field.
ASKED = {"provider": "openai", "model_id": GPT, "messages": "q3", "extra_body": {f"x{ACTING}": 1}}


def acts(text: str) -> list[str]:
    """The acting characters ``text`` holds raw."""
    return [ch for ch in ACTING_CHARS if ch in text]


def reformatted(path: Path, **changes: object) -> None:
    """Rewrite an entry as a hand-formatted format-1 file with ``changes`` to its envelope (the
    full parse, not the fast path; format 1 carries no digest to keep in step)."""
    envelope = json.loads(path.read_bytes())
    envelope.pop("digest", None)
    envelope.update(format=1, **changes)
    path.write_text(json.dumps(envelope, indent=1))


@pytest.fixture
async def hostile(plain_config: CacheConfig) -> dict[str, Path]:
    """A plaintext cache of OpenAI entries with acting characters where a file can hold them."""
    cache = await seed_cache("tty", plain_config, ["q0", "q1", "q2"])
    root = plain_config.resolved_dir
    named, meta, copied = (entry.path for entry in cache.entries)
    renamed = named.with_name(f"{ACTING}.json")
    named.rename(renamed)
    reformatted(meta, model_id=GPT + ACTING)
    model_folder = copied.parent.with_name(f"m{ACTING}")
    provider_folder = root / f"p{ACTING}" / "m"
    for folder in (model_folder, provider_folder):
        folder.mkdir(parents=True)
        shutil.copy(copied, folder / copied.name)
    manager = CacheManager(root, plain_config)
    hostile_field = {f"x{ACTING}": f"v{ACTING}"}  # (a valid entry: a request and answer with them)
    request = manager.bind(plain_config).chat_request("openai", GPT, "q3", extra_body=hostile_field)
    await plant(plain_config, request, {"text": f"hi {ACTING}", "finish_reason": "stop"})
    answered = entry_path(root, "openai", GPT, request.key)
    return {
        "root": root,
        "renamed": renamed,
        "meta": meta,
        "model folder": model_folder / copied.name,
        "provider folder": provider_folder / copied.name,
        "answered": answered,
    }


@pytest.mark.parametrize(
    ("command", "shows_names"),
    [
        (("verify",), True),
        (("ls",), True),
        (("stats",), True),
        (("cleanup",), False),
        (("show", "@meta"), True),
        (("show", "@answered"), True),
        (("explain", json.dumps(ASKED)), True),
    ],
    ids=["verify", "ls", "stats", "cleanup", "show-metadata", "show-answer", "explain"],
)
def test_no_command_prints_an_acting_character(
    hostile: dict[str, Path], command: tuple[str, ...], shows_names: bool
) -> None:
    args = [hostile[arg[1:]].stem if arg.startswith("@") else arg for arg in command]
    result, problems = run_cli("cache", *args, "--dir", str(hostile["root"]))

    output = result.stdout + result.stderr
    assert problems == []
    assert acts(output) == [], output
    if shows_names:  # (shown, escaped: the user sees that something is there)
        assert "\\u001b]0;owned\\u0007" in output


def test_verify_names_every_hostile_file_plainly_and_json_keeps_the_names(
    hostile: dict[str, Path],
) -> None:
    text, _ = run_cli("cache", "verify", "--dir", str(hostile["root"]))
    report, _ = run_cli("cache", "verify", "--json", "--dir", str(hostile["root"]))

    bad = {hostile[name].resolve() for name in ("renamed", "meta", "model folder")}
    bad.add(hostile["provider folder"].resolve())
    assert verify_named(report) == bad  # (the JSON reads back as the real file names)
    assert acts(report.stdout) == []
    lines = [line for line in text.stdout.splitlines() if ": " in line]
    assert len([line for line in lines if "\\u001b]0;owned" in line]) >= 3
    assert "misplaced: entry of openai/gpt-4o-mini\\u001b]0;owned" in text.stdout
    assert text.exit_code == 1


async def test_the_replay_error_shows_the_nearest_entry_escaped(
    hostile: dict[str, Path], plain_config: CacheConfig
) -> None:
    config = CacheConfig(enabled=True, cache_dir=hostile["root"], mode="replay")
    manager = CacheManager(hostile["root"], config)
    asked = {name: value for name, value in ASKED.items() if name not in ("provider", "model_id")}
    request = manager.bind(config).chat_request("openai", GPT, **asked)

    async def never() -> dict[str, object]:
        raise AssertionError("replay called the provider")

    with pytest.raises(CacheMissError) as caught:
        await manager.get_or_call(request, never, config)

    message = str(caught.value)
    assert acts(message) == []
    assert "x\\u001b]0;owned" in message  # the stored request's field, named and escaped
