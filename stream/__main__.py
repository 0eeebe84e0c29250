"""``python -m auditstream.stream``: the ``auditstream`` command without the console script."""

import sys

from auditstream.stream.cli.main import main

sys.exit(main())
