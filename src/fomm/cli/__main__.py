"""``python -m fomm.cli ...`` (and ``torchrun -m fomm.cli train ...``)."""

import sys

from . import main

sys.exit(main())
