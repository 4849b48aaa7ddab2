"""``spark cache keygen`` and ``spark cache rotate-key``, including an interrupted rotation."""

from __future__ import annotations

import errno
import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from spark.cache import CacheConfig, CacheManager, KeyRing, admin, generate_key
from spark.cache.codec import decode_envelope, open_payload
from spark.cache.crypto import fingerprint, read_key_file
from spark.cache.stores.disk import DiskStore

Invoke = Callable[..., Result]
Fill = Callable[..., list[str]]


def test_keygen_prints_a_key(spark: Invoke) -> None:
    result = spark("cache", "keygen")
    assert result.exit_code == 0
    key = result.stdout.strip()
    KeyRing.from_keys([key])  # a valid Fernet key
    assert fingerprint(key) in result.stderr
    assert spark("cache", "keygen").stdout.strip() != key
    shown = json.loads(spark("cache", "keygen", "--json").stdout)
    assert fingerprint(shown["key"]) == shown["fingerprint"]


def test_keygen_write_creates_a_0600_file_and_never_overwrites(
    spark: Invoke, tmp_path: Path
) -> None:
    path = tmp_path / "keys" / "cache.key"
    result = spark("cache", "keygen", "--write", str(path))
    assert result.exit_code == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    (key,) = read_key_file(path)
    assert fingerprint(key) in result.stdout
    assert key not in result.output  # the secret stays in the file
    again = spark("cache", "keygen", "--write", str(path))
    assert again.exit_code == 1
    assert "already exists" in again.stderr
    assert read_key_file(path) == [key]


def test_keygen_write_into_a_file_is_an_os_error_line(spark: Invoke, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    result = spark("cache", "keygen", "--write", str(blocker / "cache.key"))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.output


def _entries(cache_dir: Path) -> dict[str, tuple[float, float | None, str]]:
    """key -> (created_at, expires_at, key fingerprint) of every entry."""
    found = {}
    for path in cache_dir.rglob("*.json"):
        meta = decode_envelope(path.read_bytes()).meta
        found[meta.key] = (meta.created_at, meta.expires_at, meta.key_fingerprint)
    return found


def _decrypt_all(cache_dir: Path, key: str) -> list[str]:
    ring = KeyRing.from_keys([key])
    texts = []
    for path in sorted(cache_dir.rglob("*.json")):
        envelope = decode_envelope(path.read_bytes())
        texts.append(open_payload(envelope, ring)["response"]["text"])
    return texts


def test_rotate_key_interrupted_half_way_then_resumed(
    spark: Invoke,
    project: Path,
    cache_dir: Path,
    fill: Fill,
    key_file: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old = key_file()
    fill(6, encrypt=True, key_file=project / "secrets" / "cache.key")
    fill(2, encrypt=False, start=100)  # plaintext in an encrypting profile: encrypted too
    before = _entries(cache_dir)
    new = generate_key()

    # The only mock: the 4th entry write fails as a full disk would.
    real_write = DiskStore.write
    writes = {"count": 0}

    def failing_write(self: DiskStore, path: str, data: bytes) -> tuple[int, int, int]:
        writes["count"] += 1
        if writes["count"] == 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, path, data)

    monkeypatch.setattr(DiskStore, "write", failing_write)
    stopped = spark("cache", "rotate-key", "--profile", "ci", "--new-key", new, "--yes")
    assert stopped.exit_code == 1
    assert "rotation stopped at" in stopped.stderr
    assert "after 3 of 8 entries" in stopped.stderr
    assert "spark cache rotate-key --resume" in stopped.stderr
    assert "Traceback" not in stopped.output
    # The key list was saved before the first entry was touched: new first, then the old key.
    assert read_key_file(project / "secrets" / "cache.key") == [new, old]
    half = _entries(cache_dir)
    assert sum(fp == fingerprint(new) for _, _, fp in half.values()) == 3
    assert not list(cache_dir.rglob("*.tmp"))  # the failed write left no temp file

    monkeypatch.setattr(DiskStore, "write", real_write)
    resumed = spark("cache", "rotate-key", "--profile", "ci", "--resume", "--yes")
    assert resumed.exit_code == 0, resumed.output
    assert "3 already under the new key" in resumed.stdout
    assert "To retire the old key(s) " + fingerprint(old) in resumed.stdout

    after = _entries(cache_dir)
    assert set(after) == set(before)
    for key, (created, expires, fp) in after.items():
        assert (created, expires) == before[key][:2]  # timestamps unchanged
        assert fp == fingerprint(new)
    assert sorted(_decrypt_all(cache_dir, new)) == sorted(
        [f"answer {i}" for i in range(6)] + ["answer 100", "answer 101"]
    )
    verified = spark("cache", "verify", "--profile", "ci", "--require-encrypted")
    assert verified.exit_code == 0, verified.output
    assert stat.S_IMODE((project / "secrets" / "cache.key").stat().st_mode) == 0o600


def test_rotate_key_from_the_environment_prints_the_new_secret(
    spark: Invoke,
    cache_dir: Path,
    fill: Fill,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old = generate_key()
    monkeypatch.setenv("SPARK_CACHE_KEY", old)
    fill(3, encrypt=True)
    result = spark("cache", "rotate-key", "--profile", "vault", "--yes")
    assert result.exit_code == 0, result.output
    line = next(x for x in result.stdout.splitlines() if x.startswith("SPARK_CACHE_KEY="))
    new, kept = line.removeprefix("SPARK_CACHE_KEY=").split(",")
    assert kept == old
    assert "3 re-encrypted" in result.stdout
    assert sorted(_decrypt_all(cache_dir, new)) == ["answer 0", "answer 1", "answer 2"]
    # Re-running with the new list in place and the same key has nothing left to do.
    monkeypatch.setenv("SPARK_CACHE_KEY", f"{new},{old}")
    again = spark("cache", "rotate-key", "--profile", "vault", "--new-key", new, "--yes", "--json")
    report = json.loads(again.stdout)
    assert (report["skipped"], report["reencrypted"]) == (3, 0)
    assert report["old_key_fingerprints"] == [fingerprint(old)]


def test_rotate_key_names_the_key_it_does_not_hold(
    spark: Invoke,
    cache_dir: Path,
    fill: Fill,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lost = generate_key()
    monkeypatch.setenv("SPARK_CACHE_KEY", lost)
    fill(1, encrypt=True)  # sealed with a key that is then lost
    held = generate_key()
    monkeypatch.setenv("SPARK_CACHE_KEY", held)
    fill(2, encrypt=True, start=10)
    before = _entries(cache_dir)
    # --resume: refused up front, one line naming the key, nothing changed.
    resume = spark("cache", "rotate-key", "--profile", "vault", "--resume", "--yes")
    assert resume.exit_code == 1
    assert resume.stderr.startswith(
        f"error: --resume: 1 of 3 entries are sealed with key {fingerprint(lost)}, which "
        f"SPARK_CACHE_KEY does not hold (it holds {fingerprint(held)}); nothing was changed\n"
    )
    assert "SPARK_CACHE_KEY=" not in resume.output
    assert _entries(cache_dir) == before
    # A fresh rotation re-encrypts what it can open and ends with the key the rest need.
    result = spark("cache", "rotate-key", "--profile", "vault", "--yes")
    assert result.exit_code == 1
    assert "2 re-encrypted" in result.stdout
    assert "uses a key we do not hold" in result.stdout
    assert (
        "error: 1 entry could not be re-encrypted (listed above): 1 of 3 entries are sealed "
        f"with key {fingerprint(lost)}, which SPARK_CACHE_KEY does not hold"
    ) in result.stderr
    assert "Add that key to SPARK_CACHE_KEY after the keys there" in result.stderr
    assert "spark cache rotate-key --resume --profile vault" in result.stderr
    assert "delete" not in result.stderr


def test_rotate_key_reports_a_tampered_entry_and_rotates_the_rest(
    spark: Invoke, cache_dir: Path, fill: Fill, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPARK_CACHE_KEY", generate_key())
    fill(3, encrypt=True)
    victim = min(cache_dir.rglob("*.json"))
    document = json.loads(victim.read_bytes())
    token = document["payload"]
    document["payload"] = token[:60] + ("B" if token[60] != "B" else "C") + token[61:]
    victim.write_text(json.dumps(document))
    result = spark("cache", "rotate-key", "--profile", "vault", "--yes")
    assert result.exit_code == 1
    assert "2 re-encrypted" in result.stdout
    assert f"{victim}: " in result.stdout
    assert result.stdout.count(str(victim)) == 1  # (the path once, not again in its reason)
    assert "tampered" in result.stdout
    assert "error: 1 entry could not be re-encrypted (listed above)" in result.stderr
    assert "`spark cache verify`" in result.stderr


def test_rotate_key_reports_another_keys_entry_and_leaves_it_as_it_was(
    spark: Invoke, cache_dir: Path, fill: Fill, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sealed entry copied over another's, its header key edited to the file's name: every
    read refuses it (its request is another key's); rotation lists it instead of sealing it."""
    monkeypatch.setenv("SPARK_CACHE_KEY", generate_key())
    fill(3, encrypt=True)
    first, second = sorted(cache_dir.rglob("*.json"))[:2]
    document = json.loads(first.read_bytes())
    document["key"] = second.stem
    second.write_text(json.dumps(document))
    before = second.read_bytes()

    result = spark("cache", "rotate-key", "--profile", "vault", "--yes")

    assert result.exit_code == 1
    assert "2 re-encrypted" in result.stdout
    assert f"{second}: the stored request hashes to" in result.stdout
    assert second.read_bytes() == before


def test_rotate_key_confirms_and_validates(
    spark: Invoke, fill: Fill, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPARK_CACHE_KEY", generate_key())
    fill(2, encrypt=True)
    declined = spark("cache", "rotate-key", "--profile", "vault", input="n\n")
    assert declined.exit_code == 1
    assert "Re-encrypt 2 entries" in declined.stderr
    bad = spark("cache", "rotate-key", "--profile", "vault", "--new-key", "nope", "--yes")
    assert bad.exit_code == 1
    assert "not a valid Fernet key" in bad.stderr
    both = spark("cache", "rotate-key", "--resume", "--new-key", generate_key())
    assert both.exit_code == 2


def test_rotate_key_names_each_plaintext_entry_it_seals(
    spark: Invoke, cache_dir: Path, fill: Fill, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plaintext entry in a cache that encrypts may be planted: sealing it makes it pass for
    a recorded answer, so the prompt counts them and the report names each one."""
    monkeypatch.setenv("SPARK_CACHE_KEY", generate_key())
    fill(2, encrypt=True)
    (planted,) = fill(1, encrypt=False, start=50)
    path = next(cache_dir.rglob(f"{planted}.json"))

    result = spark("cache", "rotate-key", "--profile", "vault", input="y\n")

    assert result.exit_code == 0, result.output
    assert "Re-encrypt 3 entries (1 of them plaintext, to be sealed: see them first with" in (
        result.stderr
    )
    lines = result.stdout.splitlines()
    at = lines.index(
        "Sealed 1 entry found in plaintext. A plaintext entry in a cache that encrypts may have"
        " been planted by anyone who can write to it: check these before you commit them."
    )
    assert lines[at + 1] == f"  {path}"
    secret = next(x for x in lines if x.startswith("SPARK_CACHE_KEY="))
    monkeypatch.setenv("SPARK_CACHE_KEY", secret.removeprefix("SPARK_CACHE_KEY="))
    again = spark("cache", "rotate-key", "--profile", "vault", "--yes", "--json")
    assert again.exit_code == 0, again.output
    report = json.loads(again.stdout)
    assert (report["reencrypted"], report["sealed_plaintext"]) == (3, [])


def test_missing_key_is_one_clear_error(spark: Invoke, project: Path, fill: Fill) -> None:
    result = spark("cache", "rotate-key", "--profile", "ci", "--resume", "--yes")
    assert result.exit_code == 1
    assert "no key is configured" in result.stderr


# -- the new key never has to pass through a command line ----------------------------------------


def test_rotate_key_reads_the_new_key_from_standard_input(
    spark: Invoke, project: Path, fill: Fill, key_file: Callable[..., str]
) -> None:
    old = key_file()
    path = project / "secrets" / "cache.key"
    fill(3, encrypt=True, key_file=path)
    new = generate_key()
    given = f"# the new key\n\n{new}\n"  # as in a key file: comments and blank lines skipped
    result = spark("cache", "rotate-key", "--profile", "ci", "--new-key", "-", "--yes", input=given)
    assert result.exit_code == 0, result.output
    assert read_key_file(path) == [new, old]
    assert "3 re-encrypted" in result.stdout
    assert new not in result.output
    assert "warning" not in result.stderr
    # Without --yes the confirmation is the next line of standard input.
    newer = generate_key()
    confirmed = spark(
        "cache", "rotate-key", "--profile", "ci", "--new-key", "-", input=f"{newer}\ny\n"
    )
    assert confirmed.exit_code == 0, confirmed.output
    assert "Re-encrypt 3 entries" in confirmed.stderr
    assert read_key_file(path) == [newer, new, old]
    empty = spark("cache", "rotate-key", "--profile", "ci", "--new-key", "-", "--yes", input="")
    assert empty.exit_code == 1
    assert "no key on standard input" in empty.stderr


def test_rotate_key_reads_the_new_key_from_an_environment_variable(
    spark: Invoke,
    project: Path,
    fill: Fill,
    key_file: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old = key_file()
    path = project / "secrets" / "cache.key"
    fill(2, encrypt=True, key_file=path)
    new = generate_key()
    monkeypatch.setenv("NEW_CACHE_KEY", new)
    result = spark("cache", "rotate-key", "--profile", "ci", "--new-key-env", "NEW_CACHE_KEY", "-y")
    assert result.exit_code == 0, result.output
    assert read_key_file(path) == [new, old]
    assert new not in result.output
    assert "warning" not in result.stderr

    unset = spark("cache", "rotate-key", "--profile", "ci", "--new-key-env", "NO_SUCH_KEY", "-y")
    assert unset.exit_code == 1
    assert "environment variable NO_SUCH_KEY is not set" in unset.stderr
    for bad, reason in (("nope", "not a valid Fernet key"), (f"{new},{old}", "several")):
        monkeypatch.setenv("NEW_CACHE_KEY", bad)
        refused = spark("cache", "rotate-key", "--profile", "ci", "--new-key-env", "NEW_CACHE_KEY")
        assert refused.exit_code == 1
        assert reason in refused.stderr
        assert "NEW_CACHE_KEY" in refused.stderr
        assert bad not in refused.output
    assert read_key_file(path) == [new, old], "a refused key changes nothing"
    both = spark("cache", "rotate-key", "--new-key", "-", "--new-key-env", "NEW_CACHE_KEY")
    assert both.exit_code == 2
    resume = spark("cache", "rotate-key", "--resume", "--new-key-env", "NEW_CACHE_KEY")
    assert resume.exit_code == 2


def test_a_literal_new_key_still_works_and_warns(
    spark: Invoke, project: Path, fill: Fill, key_file: Callable[..., str]
) -> None:
    old = key_file()
    fill(1, encrypt=True, key_file=project / "secrets" / "cache.key")
    new = generate_key()
    result = spark("cache", "rotate-key", "--profile", "ci", "--new-key", new, "--yes")
    assert result.exit_code == 0, result.output
    assert read_key_file(project / "secrets" / "cache.key") == [new, old]
    assert "warning: a key given on the command line is visible to other users" in result.stderr
    assert "`--new-key -`" in result.stderr
    assert "`--new-key-env NAME`" in result.stderr


def test_an_interrupted_rotation_resumes_with_no_key_on_the_command_line(
    spark: Invoke, cache_dir: Path, fill: Fill, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = generate_key()
    monkeypatch.setenv("SPARK_CACHE_KEY", old)
    fill(4, encrypt=True)
    real_write = DiskStore.write
    writes = {"count": 0}

    def failing_write(self: DiskStore, path: str, data: bytes) -> tuple[int, int, int]:
        writes["count"] += 1
        if writes["count"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, path, data)

    monkeypatch.setattr(DiskStore, "write", failing_write)
    stopped = spark("cache", "rotate-key", "--profile", "vault", "--yes")
    assert stopped.exit_code == 1
    line = next(x for x in stopped.stdout.splitlines() if x.startswith("SPARK_CACHE_KEY="))
    new = line.removeprefix("SPARK_CACHE_KEY=").split(",")[0]
    # How to go on names only the safe forms: a hidden prompt, stdin, a variable.
    assert "never type it on a command line" in stopped.stderr
    assert "`read -rs SPARK_CACHE_KEY && export SPARK_CACHE_KEY`, then paste it" in stopped.stderr
    assert "Then finish with:\n  spark cache rotate-key --resume --profile vault" in stopped.stderr
    assert "--new-key KEY" not in stopped.stderr

    monkeypatch.setattr(DiskStore, "write", real_write)
    resumed = spark("cache", "rotate-key", "--profile", "vault", "--new-key", "-", "-y", input=new)
    assert resumed.exit_code == 0, resumed.output
    assert "2 already under the new key" in resumed.stdout
    assert "2 re-encrypted" in resumed.stdout
    assert "warning: a key given" not in resumed.stderr
    assert sorted(_decrypt_all(cache_dir, new)) == [f"answer {i}" for i in range(4)]


# -- rotate-key refuses a cache it has no business rotating ---------------------------------------

STARTER = """\
[spark]
default_profile = "development"

[cache]
dir = "user-cache"

[profiles.development.cache]
enabled = true

[profiles.testing.cache]
enabled = true
dir = "tests/llm_cache"
encrypt = true
mode = "replay"
"""


def _starter_project(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The docs' layout: a development default that does not encrypt, and a testing profile
    whose committed cache (tests/llm_cache) does; three entries in it."""
    (project / "spark.toml").write_text(STARTER)
    committed = project / "tests" / "llm_cache"
    monkeypatch.setenv("SPARK_CACHE_KEY", generate_key())
    monkeypatch.delenv("ENVIRONMENT", raising=False)
    config = CacheConfig(enabled=True, cache_dir=committed, encrypt=True)
    bound = CacheManager(committed, config).bind(config)
    for index in range(3):
        request = bound.chat_request("openai", "gpt-4o-mini", f"question {index}")
        assert bound.save(request, {"text": f"answer {index}", "cost_usd": 0.0})
    return committed


def test_rotate_key_without_a_profile_does_not_rotate_the_default_user_cache(
    spark: Invoke, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    committed = _starter_project(project, monkeypatch)
    before = _entries(committed)
    result = spark("cache", "rotate-key", "--yes")
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"error: profile development does not encrypt its cache ({project / 'user-cache'}): "
        "there is no key to rotate\n"
    )
    assert "`spark cache rotate-key --profile testing`" in result.stderr
    assert str(committed) in result.stderr
    assert "SPARK_CACHE_KEY=" not in result.output  # no new secret printed
    assert _entries(committed) == before
    # Named (by --profile, or by ENVIRONMENT as the docs run it), it goes ahead.
    monkeypatch.setenv("ENVIRONMENT", "testing")
    named = spark("cache", "rotate-key", "--yes")
    assert named.exit_code == 0, named.output
    assert "3 re-encrypted" in named.stdout


def test_rotate_key_does_not_guess_between_two_encrypting_profiles(
    spark: Invoke, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    committed = _starter_project(project, monkeypatch)
    text = STARTER.replace(
        "[profiles.development.cache]\n", "[profiles.development.cache]\nencrypt = true\n"
    )
    (project / "spark.toml").write_text(text)
    before = _entries(committed)
    result = spark("cache", "rotate-key", "--yes")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: no profile named: the active one, development (")
    assert "`spark cache rotate-key --profile development`" in result.stderr
    assert "`spark cache rotate-key --profile testing`" in result.stderr
    assert "SPARK_CACHE_KEY=" not in result.output
    assert _entries(committed) == before
    assert spark("cache", "rotate-key", "--profile", "testing", "--yes").exit_code == 0


def test_rotate_key_refuses_a_profile_that_does_not_encrypt(
    spark: Invoke, cache_dir: Path, fill: Fill, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPARK_CACHE_KEY", generate_key())
    fill(2)
    before = _entries(cache_dir)
    result = spark("cache", "rotate-key", "--profile", "dev", "--yes")
    assert result.exit_code == 1
    assert "error: profile dev does not encrypt its cache" in result.stderr
    # Every profile of the test spark.toml shares one directory: no other cache to point at.
    assert "set encrypt = true (with key_env or key_file)" in result.stderr
    assert "SPARK_CACHE_KEY=" not in result.output
    assert _entries(cache_dir) == before


def test_rotate_key_with_nothing_to_rotate(
    spark: Invoke, project: Path, key_file: Callable[..., str]
) -> None:
    old = key_file()
    result = spark("cache", "rotate-key", "--profile", "ci", "--yes")
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"error: nothing to rotate: the cache of profile ci ({project / 'cache'}) holds no "
        "entries\n"
    )
    assert read_key_file(project / "secrets" / "cache.key") == [old]  # no new key saved


def test_resume_with_no_rotation_to_finish(
    spark: Invoke, cache_dir: Path, fill: Fill, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = generate_key()
    monkeypatch.setenv("SPARK_CACHE_KEY", key)
    fill(2, encrypt=True)
    result = spark("cache", "rotate-key", "--profile", "vault", "--resume", "--yes")
    assert result.exit_code == 1
    assert (
        f"error: --resume: every entry is already under key {fingerprint(key)}, the only key in "
        "SPARK_CACHE_KEY: there is no rotation to finish"
    ) in result.stderr
    assert "run `spark cache rotate-key` without --resume" in result.stderr


def _during_rotation(
    monkeypatch: pytest.MonkeyPatch, victim: Path, act: Callable[[], None]
) -> None:
    """The fault: another process acts on ``victim`` right after rotate-key read its payload
    (before its write)."""
    read = admin.reader.read_entry

    def read_then_act(store: Any, location: str, *args: Any, **kwargs: Any) -> Any:
        found = read(store, location, *args, **kwargs)
        if location == str(victim) and kwargs.get("with_payload", True) and args:
            act()
        return found

    monkeypatch.setattr(admin.reader, "read_entry", read_then_act)


def test_rotate_key_never_brings_back_an_entry_deleted_meanwhile(
    spark: Invoke, cache_dir: Path, fill: Fill, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPARK_CACHE_KEY", generate_key())
    fill(3, encrypt=True)
    victim = min(cache_dir.rglob("*.json"))
    _during_rotation(monkeypatch, victim, victim.unlink)  # (`spark cache clear`, an eviction)
    result = spark("cache", "rotate-key", "--profile", "vault", "--yes")
    assert result.exit_code == 0, result.output
    assert "2 re-encrypted, 1 deleted meanwhile" in result.stdout
    assert "tampered" not in result.output
    assert not victim.exists()


def test_rotate_key_keeps_an_entry_rewritten_meanwhile(
    spark: Invoke, cache_dir: Path, fill: Fill, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = generate_key()
    monkeypatch.setenv("SPARK_CACHE_KEY", old)
    (key, _, _) = fill(3, encrypt=True)
    victim = next(cache_dir.rglob(f"{key}.json"))
    config = CacheConfig(enabled=True, cache_dir=cache_dir, encrypt=True)
    bound = CacheManager(cache_dir, config).bind(config)

    def refresh() -> None:  # (a `refresh` call of another process stores a newer answer)
        request = bound.chat_request("openai", "gpt-4o-mini", "question 0")
        assert bound.save(request, {"text": "the newer answer", "cost_usd": 0.001})

    _during_rotation(monkeypatch, victim, refresh)
    result = spark("cache", "rotate-key", "--profile", "vault", "--yes", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["reencrypted"], report["changed"]) == (2, 1)
    envelope = decode_envelope(victim.read_bytes())
    assert envelope.meta.key_fingerprint == fingerprint(old)
    assert open_payload(envelope, KeyRing.from_keys([old]))["response"]["text"] == (
        "the newer answer"
    )
