"""``python -m codec`` runs the ``svq`` command line."""

from codec.cli import run

run()
