"""``python -m spark``: the ``spark`` command line."""

from __future__ import annotations

from spark.cli import main

if __name__ == "__main__":
    main()
