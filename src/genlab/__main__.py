import sys

from genlab.cli import main

sys.exit(main())
