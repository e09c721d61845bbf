"""`python -m ncsim ...` is the `ncsim` command."""

import sys

from ncsim.cli import main

sys.exit(main())
