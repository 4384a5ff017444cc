"""``python -m jaxsoft``: the same as the ``jaxsoft`` console script."""

from jaxsoft.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
