import sys

from chalkcompute.runtime.runner import main

sys.exit(main())
