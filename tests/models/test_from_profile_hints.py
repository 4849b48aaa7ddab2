"""``spark.models.from_profile`` with an alias it cannot find says where it looked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import spark.models
from spark.errors import ConfigError

CALL = "import spark.models\nspark.models.from_profile('gpt-4o')\n"


def test_outside_a_project_the_error_says_no_spark_toml_was_found(tmp_path: Path) -> None:
    outside = tmp_path / "no" / "project"
    outside.mkdir(parents=True)

    done = subprocess.run(
        [sys.executable, "-c", CALL], cwd=outside, capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        f"spark.errors.ConfigError: unknown model alias 'gpt-4o': no spark.toml in {outside} or"
        " any directory above it, and SPARK_CONFIG is not set. Write one with `spark config"
        " init` and add [models.gpt-4o] (provider, model_id), or pass config_path="
    )
    assert "(none defined)" not in done.stderr


def test_in_a_project_the_error_names_the_file_the_profile_and_close_matches(
    tmp_path: Path,
) -> None:
    config = tmp_path / "spark.toml"
    config.write_text(
        '[models.gpt-4o]\nprovider = "openai"\nmodel_id = "gpt-4o"\n\n'
        '[models.embed]\nprovider = "openai"\nmodel_id = "text-embedding-3-small"\n',
        encoding="utf-8",
    )

    with pytest.raises(ConfigError) as raised:
        spark.models.from_profile("gtp-4o")

    assert str(raised.value) == (
        f"unknown model alias 'gtp-4o' in {config} (profile 'default'); did you mean 'gpt-4o'?"
        " known aliases: gpt-4o, embed"
    )
