"""``python -m skyfit.cli``: the ``skyfit`` command."""

import sys

from . import main

sys.exit(main())
