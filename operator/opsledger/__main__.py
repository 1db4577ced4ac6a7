import sys

from opsledger.cli import main

sys.exit(main())
