import sys

from raygrad.cli import main

sys.exit(main())
