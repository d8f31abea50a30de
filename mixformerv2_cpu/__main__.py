"""``python -m mixformerv2_cpu ...`` is the ``mixformerv2`` command."""
from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
