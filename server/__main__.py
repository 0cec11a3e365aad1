import sys

from segpilot.cli import main

sys.exit(main())
