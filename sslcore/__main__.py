"""`python -m sslcore ...` (also what torchrun launches on every rank)."""

import sys

from sslcore.cli import main

sys.exit(main())
