"""`python -m app.cli`: the same as the `srgan` console script."""

import sys

from app.cli.main import main

sys.exit(main())
