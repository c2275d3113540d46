"""``python -m kinetoscope ...``, the ``kinetoscope`` command; also what ``torchrun -m kinetoscope``
starts in each process of a data-parallel ``train dit``."""

import sys

from kinetoscope.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
