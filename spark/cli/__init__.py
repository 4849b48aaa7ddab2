"""Spark cli package."""


def main() -> None: ...
