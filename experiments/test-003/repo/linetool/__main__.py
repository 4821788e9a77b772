import sys

from linetool.cli import main

sys.exit(main())
