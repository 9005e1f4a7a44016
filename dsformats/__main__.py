"""``python -m dsformats``."""

import sys

from dsformats.cli import main

sys.exit(main())
