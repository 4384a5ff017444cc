"""``python -m jaxsoft``: the same as the ``jaxsoft`` console script."""

from jaxsoft.cli import run

if __name__ == "__main__":
    run()
