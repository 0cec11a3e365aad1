import sys

from segpilot.cli import main

# Guarded: worker processes (`spawn`) import the main module again and must not run it.
if __name__ == "__main__":
    sys.exit(main())
