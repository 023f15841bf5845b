"""``python -m diffsim``: the ``diffsim`` command."""

import sys

from .cli import main

sys.exit(main())
