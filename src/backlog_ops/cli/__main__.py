"""python -m backlog_ops.cli"""

import sys

from backlog_ops.cli.main import main

sys.exit(main())
