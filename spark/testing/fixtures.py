"""A pytest fixture that runs a `ProviderServer` for one test.

Import it into a test module or a `conftest.py`::

    from spark.testing.fixtures import provider_server  # noqa: F401
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from spark.testing.server import ProviderServer

__all__ = ["provider_server"]


@pytest.fixture
def provider_server() -> Iterator[ProviderServer]:
    """Yield a started `ProviderServer` and stop it when the test ends."""
    with ProviderServer() as server:
        yield server
