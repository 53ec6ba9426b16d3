"""`python -m exporter` runs the `saliency-export` CLI."""

import sys

from exporter.cli import main

sys.exit(main())
