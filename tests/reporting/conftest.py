"""Fixtures for report tests: the local provider server and a cache directory under tmp."""

from __future__ import annotations

import json
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    """An empty cache directory."""
    path = tmp_path / "llm-cache"
    path.mkdir()
    return path


class _PageReader(HTMLParser):
    """Collects the embedded JSON, every tag name, and every attribute value of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self._script: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend((name, value or "") for name, value in attrs)
        if tag == "script":
            self._script = dict(attrs)
            self.scripts.append((self._script, ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._script = None

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)


@pytest.fixture
def read_page() -> Callable[[str], tuple[dict[str, Any], _PageReader]]:
    """``read_page(html)``: the embedded ``spark-data`` JSON and the parsed page."""

    def read(page: str) -> tuple[dict[str, Any], _PageReader]:
        reader = _PageReader()
        reader.feed(page)
        reader.close()
        (attrs, text), *others = reader.scripts
        assert others == [], "exactly one script element"
        assert attrs == {"type": "application/json", "id": "spark-data"}
        return json.loads(text), reader

    return read
