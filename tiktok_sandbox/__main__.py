"""`python -m tiktok_sandbox`."""

import sys

from tiktok_sandbox.cli import main

sys.exit(main())
