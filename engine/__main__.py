"""``python -m engine`` is the ``switchyard`` command."""
import sys

from .cli import main

sys.exit(main())
