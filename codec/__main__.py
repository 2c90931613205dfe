"""``python -m codec`` runs the ``svq`` command line."""

import sys

from codec.cli import main

sys.exit(main())
