"""Redis URLs as Spark shows them: the scheme, and the address with its password hidden."""

from __future__ import annotations

import re

__all__ = ["redact_url", "url_scheme"]


def url_scheme(url: str) -> str:
    """The scheme of ``url`` (``redis`` of ``redis://host``), "" when it has none."""
    scheme, found, _ = url.partition("://")
    return scheme.lower() if found else ""


def redact_url(url: str) -> str:
    """``url`` with its password (in the user part or a ``password=`` query) shown as ``***``."""
    url = _URL_PASSWORD.sub(r"\1:***@", url)
    return _QUERY_PASSWORD.sub(r"\1***", url)


# The password runs to the last "@" of the address, as urllib (and so redis-py) reads it: a raw
# "@" in a password is part of it.
_URL_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:/@?#]*):[^/?#]*@")
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#]*")
