"""`python -m opsledger.cli`, as the integration tests run it."""

import sys

from opsledger.cli import main

sys.exit(main())
