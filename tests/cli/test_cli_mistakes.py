"""A command never succeeds on a mistake, and each error's hint fits the situation.

Each test makes the mistake a user makes (a typo in ``--dir``, ``--provider``, ``--model``,
``--config`` or the profile; the wrong key; a 0644 key file) and checks the exit code, the
error line and the hint — and that nothing in the cache was lost.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from spark.cache import generate_key
from spark.cache.crypto import fingerprint

Invoke = Callable[..., Result]
Fill = Callable[..., list[str]]
CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"  # the `claude` alias of the test spark.toml


def _entries(cache_dir: Path) -> int:
    return len(list(cache_dir.rglob("*.json")))


# -- a --dir that does not exist -----------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ("cache", "verify", "--require-encrypted"),
        ("cache", "stats"),
        ("cache", "ls"),
        ("cache", "clear", "--yes"),
        ("cache", "cleanup"),
        ("cache", "show", "0123456789ab"),
        ("cache", "report", "--json"),
        ("cache", "prune", "--unused", "--yes"),
        ("cache", "explain", '{"messages": "Hi"}', "--model", "gpt"),
    ],
)
def test_a_missing_dir_is_an_error_not_an_empty_cache(
    spark: Invoke, fill: Fill, project: Path, cache_dir: Path, command: tuple[str, ...]
) -> None:
    fill(2)
    result = spark(*command, "--dir", "tests/llm-cache")
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: --dir tests/llm-cache: no such directory (")
    assert f"the profile's cache ({cache_dir})" in result.stderr
    assert "OK" not in result.stdout
    assert "0 entries" not in result.stdout
    assert not (project / "tests").exists()  # nothing created
    assert _entries(cache_dir) == 2


@pytest.mark.parametrize(
    "command",
    [("stats",), ("ls",), ("clear", "--yes"), ("cleanup",), ("migrate",), ("verify",)],
)
def test_a_cache_dir_that_is_a_file_is_an_error(
    spark: Invoke, cache_dir: Path, command: tuple[str, ...]
) -> None:
    cache_dir.write_bytes(b"not a directory")
    result = spark("cache", *command)
    assert result.exit_code == 1, result.output
    assert f"error: the cache directory {cache_dir} is a file, not a directory" in result.stderr
    assert cache_dir.read_bytes() == b"not a directory"


def test_verify_of_a_profile_whose_cache_does_not_exist_fails(spark: Invoke, project: Path) -> None:
    result = spark("cache", "verify", "--profile", "ci", "--require-encrypted")
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"error: no cache directory at {project / 'cache'} (the cache of profile ci)\n"
    )
    assert "Record the cache first" in result.stderr


def test_verify_of_an_existing_empty_directory_passes(spark: Invoke, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = spark("cache", "verify", "--dir", str(tmp_path / "empty"))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("OK: 0 entries in ")


def test_the_ci_check_fails_on_a_typo_in_a_real_subprocess(project: Path, fill: Fill) -> None:
    fill(1)
    result = subprocess.run(
        [sys.executable, "-m", "spark", "cache", "verify", "--dir", "cahce"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: --dir cahce: no such directory")


# -- --provider and --model ----------------------------------------------------------------


def test_clear_with_a_mistyped_provider_removes_nothing_and_says_so(
    spark: Invoke, fill: Fill, cache_dir: Path
) -> None:
    fill(3)
    result = spark("cache", "clear", "--provider", "opnai", "--yes")
    assert result.exit_code == 1
    assert "Removed" not in result.stdout
    assert result.stderr.splitlines() == [
        "error: unknown provider 'opnai'",
        "Did you mean openai? Known providers: bedrock, echo, gemini, openai.",
    ]
    assert _entries(cache_dir) == 3


def test_a_mistyped_model_lists_close_matches(spark: Invoke, fill: Fill, cache_dir: Path) -> None:
    fill(2)
    fill(1, provider="openai", model_id="ft:gpt-4o-mini:acme:support:abc123")
    for command in ("clear", "ls", "stats"):
        yes = ["--yes"] if command == "clear" else []
        result = spark("cache", command, "--model", "gpt-4o-mnii", *yes)
        assert result.exit_code == 1, (command, result.output)
        assert result.stderr.startswith("error: unknown model 'gpt-4o-mnii': not an alias")
        assert "Did you mean gpt-4o-mini" in result.stderr
    typo = spark("cache", "ls", "--model", "ft:gpt-4o-mini:acme:suport:abc123")
    assert "Did you mean ft:gpt-4o-mini:acme:support:abc123?" in typo.stderr  # from the cache
    assert _entries(cache_dir) == 3


def test_a_model_spark_knows_but_the_cache_lacks_is_no_error(spark: Invoke, fill: Fill) -> None:
    fill(2)
    result = spark("cache", "clear", "--model", "gpt-4o", "--yes")  # in the price table
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Removed 0 entries (gpt-4o) from ")


def test_model_takes_an_alias_or_a_model_id_in_ls_clear_and_stats(
    spark: Invoke, fill: Fill, cache_dir: Path
) -> None:
    fill(2)
    fill(3, provider="bedrock", model_id=CLAUDE)
    fill(1, provider="openai", model_id="my-finetune")  # known only from the cache
    for model in ("claude", CLAUDE):
        listed = json.loads(spark("cache", "ls", "--model", model, "--json").stdout)
        assert [(e["provider"], e["model_id"]) for e in listed] == [("bedrock", CLAUDE)] * 3
        stats = json.loads(spark("cache", "stats", "--model", model, "--json").stdout)
        assert [(r["provider"], r["model_id"]) for r in stats["by_model"]] == [("bedrock", CLAUDE)]
    by_id = json.loads(spark("cache", "stats", "--model", "gpt-4o-mini", "--json").stdout)
    assert by_id["total_entries"] == 2
    bedrock = json.loads(spark("cache", "stats", "--provider", "bedrock", "--json").stdout)
    assert bedrock["total_entries"] == 3
    assert len(json.loads(spark("cache", "ls", "--model", "my-finetune", "--json").stdout)) == 1
    cleared = spark("cache", "clear", "--model", "claude", "--yes")
    assert cleared.stdout.startswith(f"Removed 3 entries (bedrock/{CLAUDE}) from ")
    assert _entries(cache_dir) == 3


def test_the_model_id_of_an_alias_with_its_own_cache_selects_that_cache(
    spark: Invoke, project: Path
) -> None:
    toml = (project / "spark.toml").read_text(encoding="utf-8")
    side = '\n[models.side]\nprovider = "echo"\nmodel_id = "echo-side"\n[models.side.cache]\ndir = "side"\n'
    (project / "spark.toml").write_text(toml + side, encoding="utf-8")
    assert spark("ask", "hi", "--model", "side").exit_code == 0
    assert _entries(project / "side") == 1
    for model in ("side", "echo-side"):
        listed = json.loads(spark("cache", "ls", "--model", model, "--json").stdout)
        assert [(e["provider"], e["model_id"]) for e in listed] == [("echo", "echo-side")]
        stats = json.loads(spark("cache", "stats", "--model", model, "--json").stdout)
        assert stats["total_entries"] == 1
    cleared = spark("cache", "clear", "--model", "echo-side", "--yes")
    assert cleared.stdout.startswith("Removed 1 entry (echo-side) from "), cleared.output
    assert _entries(project / "side") == 0


def test_one_model_id_in_two_caches_asks_for_the_alias(spark: Invoke, project: Path) -> None:
    toml = (project / "spark.toml").read_text(encoding="utf-8")
    two = "".join(
        f'\n[models.{name}]\nprovider = "echo"\nmodel_id = "echo-x"\n'
        f'[models.{name}.cache]\ndir = "{name}"\n'
        for name in ("one", "two")
    )
    (project / "spark.toml").write_text(toml + two, encoding="utf-8")
    result = spark("cache", "ls", "--model", "echo-x")
    assert result.exit_code == 1
    assert "aliases one, two use that model id, in different caches" in result.stderr


def test_an_alias_of_another_provider_is_an_error(spark: Invoke, fill: Fill) -> None:
    fill(1)
    result = spark("cache", "clear", "--provider", "openai", "--model", "claude", "--yes")
    assert result.exit_code == 1
    assert "error: --model claude is an alias of bedrock, not of openai" in result.stderr


def test_explain_takes_the_model_id_of_an_alias(spark: Invoke, fill: Fill) -> None:
    fill(1)  # "question 0" of gpt-4o-mini, the `gpt` alias
    for model in ("gpt", "gpt-4o-mini"):
        result = spark("cache", "explain", '{"messages": "question 0"}', "--model", model)
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith("HIT: ")
    unknown = spark("cache", "explain", '{"messages": "question 0"}', "--model", "gtp")
    assert unknown.exit_code == 1
    assert "error: --model gtp: no alias in " in unknown.stderr
    assert "Did you mean gpt?" in unknown.stderr


# -- --config and profiles -----------------------------------------------------------------


def test_a_missing_config_is_reported_as_the_flag_the_user_typed(
    spark: Invoke, project: Path
) -> None:
    for command in (("cache", "stats"), ("config", "validate"), ("ask", "Hi", "--model", "gpt")):
        result = spark("--config", "/nope", *command)
        assert result.exit_code == 1, command
        assert result.stderr.startswith("error: --config /nope: no such file\n")
        assert "argument path" not in result.stderr
    (project / "empty").mkdir()
    folder = spark("--config", "empty", "cache", "stats")
    assert folder.stderr.startswith("error: --config empty: no spark.toml in that directory\n")


def test_a_shortened_profile_name_suggests_the_profile(
    spark: Invoke, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = project / "spark.toml"
    toml.write_text(toml.read_text() + "\n[profiles.production.cache]\nenabled = false\n")
    monkeypatch.setenv("ENVIRONMENT", "prod")
    result = spark("cache", "stats")
    assert result.exit_code == 1
    assert 'unknown profile "prod"' in result.stderr
    assert result.stderr.rstrip().endswith("Did you mean ENVIRONMENT=production?")
    monkeypatch.delenv("ENVIRONMENT")
    flag = spark("cache", "ls", "--profile", "prodution")
    assert flag.stderr.rstrip().endswith("Did you mean --profile production?")


def test_validate_does_not_send_the_user_back_to_validate(spark: Invoke, project: Path) -> None:
    (project / "spark.toml").write_text('[cache]\nmode = "sometimes"\n')
    validate = spark("config", "validate")
    assert validate.exit_code == 1
    assert "spark config validate" not in validate.stderr
    assert validate.stderr.rstrip().endswith("Fix each problem listed above, then run it again.")
    stats = spark("cache", "stats")
    assert stats.stderr.rstrip().endswith("then check it with `spark config validate`.")


# -- keys ----------------------------------------------------------------------------------


@pytest.fixture
def sealed(project: Path, fill: Fill, key_file: Callable[..., str]) -> str:
    """Four entries sealed with the ``ci`` profile's key; returns that key, now removed."""
    key = key_file()
    fill(4, encrypt=True, key_file=project / "secrets" / "cache.key")
    (project / "secrets" / "cache.key").unlink()
    return key


def test_verify_with_the_wrong_key_names_the_key_needed(
    spark: Invoke, sealed: str, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = generate_key()
    monkeypatch.setenv("SPARK_CACHE_KEY", mine)
    result = spark("cache", "verify", "--profile", "ci")
    assert result.exit_code == 1
    hint = result.stderr.splitlines()[1]
    assert hint.startswith(
        f"The entries are sealed with key {fingerprint(sealed)} (4 entries); "
        f"yours: {fingerprint(mine)}. Set SPARK_CACHE_KEY to that key, or write it to the key "
        "file "
    )
    assert "cannot open them" in hint
    assert "delete" not in result.stderr.lower()
    assert _entries(cache_dir) == 4
    monkeypatch.setenv("SPARK_CACHE_KEY", f"{mine},{sealed}")  # following the hint
    assert spark("cache", "verify", "--profile", "ci").exit_code == 0


def test_verify_without_any_key_names_the_key_needed(spark: Invoke, sealed: str) -> None:
    result = spark("cache", "verify", "--profile", "ci")
    assert result.exit_code == 1
    assert f"sealed with key {fingerprint(sealed)} (4 entries). Set SPARK_CACHE_KEY" in (
        result.stderr
    )
    assert "delete" not in result.stderr.lower()


def test_no_key_for_an_existing_cache_asks_for_its_key_not_a_new_one(
    spark: Invoke, sealed: str
) -> None:
    result = spark(
        "cache", "explain", '{"messages": "question 0"}', "--model", "gpt", "--profile", "ci"
    )
    assert result.exit_code == 1
    message, hint = result.stderr.splitlines()
    assert message.startswith("error: cache encryption is on but no key was found in ")
    assert hint.startswith(f"The entries are sealed with key {fingerprint(sealed)} (4 entries).")
    assert "keygen`" in hint  # only as what will not work:
    assert "cannot open them" in hint


def test_no_key_for_a_new_cache_suggests_keygen(spark: Invoke, project: Path) -> None:
    result = spark("cache", "explain", '{"messages": "Hi"}', "--model", "gpt", "--profile", "ci")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[1] == (
        "No entry is sealed yet: make a key with `spark cache keygen` and set SPARK_CACHE_KEY to "
        f"it, or write it to the key file {project / 'secrets' / 'cache.key'}."
    )


def test_a_key_file_readable_by_others_says_chmod_and_nothing_else(
    spark: Invoke, project: Path, key_file: Callable[..., str], fill: Fill
) -> None:
    fill(1)
    key_file()
    path = project / "secrets" / "cache.key"
    path.chmod(0o644)
    for command in (
        ("cache", "verify", "--profile", "ci"),
        ("cache", "explain", '{"messages": "Hi"}', "--model", "gpt", "--profile", "ci"),
    ):
        result = spark(*command)
        assert result.exit_code == 1
        assert result.stderr.splitlines() == [
            f"error: key file {path} is readable by others (mode 644); run `chmod 600 {path}`"
        ]


@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_a_key_file_that_is_no_file_is_an_error_not_a_hang(
    spark: Invoke, project: Path, fill: Fill, kind: str
) -> None:
    fill(1)
    path = project / "secrets" / "cache.key"
    path.parent.mkdir(exist_ok=True)
    if kind == "fifo":
        os.mkfifo(path, 0o600)  # (reading it would wait for a writer forever)
    elif kind == "device":
        path.symlink_to("/dev/zero")  # (reading it would never end)
    else:
        path.mkdir()
    done: list[Result] = []
    worker = threading.Thread(
        target=lambda: done.append(spark("cache", "verify", "--profile", "ci")), daemon=True
    )
    worker.start()
    worker.join(10)
    if kind == "fifo" and worker.is_alive():  # (let the stuck reader go before failing)
        with open(path, "wb"):
            pass
    assert done, "spark cache verify did not return within 10 s"
    result = done[0]
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        f"error: key file {path} is not a regular file of at most 65536 bytes: point key_file "
        "at the file `spark cache keygen --write` made"
    )


def test_a_malformed_key_does_not_suggest_a_new_one(
    spark: Invoke, sealed: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPARK_CACHE_KEY", sealed[:-3])  # cut when it was copied
    result = spark("cache", "explain", '{"messages": "Hi"}', "--model", "gpt", "--profile", "ci")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: the key in the environment variable SPARK_CACHE_KEY is not a valid Fernet key "
        "(44 characters of url-safe base64, as `spark cache keygen` prints them): was it cut or "
        "quoted when it was copied?"
    ]


def test_a_malformed_new_key_on_the_command_line_is_named_as_such(
    spark: Invoke, sealed: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPARK_CACHE_KEY", sealed)
    result = spark("cache", "rotate-key", "--profile", "ci", "--new-key", "garbage", "--yes")
    assert result.exit_code == 1
    assert "error: --new-key: not a valid Fernet key" in result.stderr
    assert "Make one with `spark cache keygen`." in result.stderr
    assert "#2" not in result.stderr


@pytest.mark.parametrize("command", ["ls", "stats"])
def test_a_profile_with_no_cache_directory_says_which_caches_exist(
    spark: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    """Forgetting --profile testing looked like an empty cache."""
    (tmp_path / "spark.toml").write_text(
        '[spark]\ndefault_profile = "dev"\n\n[cache]\ndir = "cache"\n\n'
        "[profiles.dev.cache]\nenabled = false\n\n"
        '[profiles.testing.cache]\nenabled = true\ndir = "tests/llm_cache"\n'
    )
    (tmp_path / "tests" / "llm_cache").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)

    result = spark("cache", command)

    assert result.exit_code == 0, result.output
    assert "no cache directory at" in result.stderr
    assert "profile dev, whose caching is off" in result.stderr
    assert "--profile testing" in result.stderr
    assert spark("cache", command, "--profile", "testing").stderr == ""


@pytest.mark.parametrize(
    ("code", "remedy"),
    [
        (errno.EROFS, "The cache's file system is read-only: run this where the cache"),
        (errno.ENOSPC, "The disk is full: free some space"),
    ],
    ids=["read-only", "disk-full"],
)
def test_a_file_system_that_refuses_writes_says_what_to_do(
    spark: Invoke,
    fill: Fill,
    cache_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    code: int,
    remedy: str,
) -> None:
    fill(2)

    def refuse(*args: object, **kwargs: object) -> int:  # (the fault: the file system refuses)
        raise OSError(code, os.strerror(code), str(cache_dir / "openai"))

    monkeypatch.setattr("spark.cache.stores.disk.DiskStore.remove_all", refuse)
    result = spark("cache", "clear", "--yes")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {os.strerror(code)}")
    assert remedy in result.stderr
    assert "Traceback" not in result.output
    assert len(list(cache_dir.rglob("*.json"))) == 2
