"""``python -m acmelite``."""

import sys

from .cli import main

sys.exit(main())
