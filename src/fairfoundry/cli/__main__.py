"""``python -m fairfoundry.cli``: the ``fairfoundry`` command."""

import sys

from . import main

sys.exit(main())
