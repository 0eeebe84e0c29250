"""``python -m devtools.traffic``: the traffic generator's command line (a source checkout only)."""

import sys

from devtools.traffic.stream import main

sys.exit(main())
