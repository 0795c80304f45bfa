"""LLaVA-NeXT's entry path: ``torchrun ... llava/train/train_mem.py --flags`` runs ``llava.train.train``.

Upstream stage scripts launch this file by path. Python then puts this folder first on ``sys.path``, where
``train.py``, ``trainer.py`` and the other modules of this package would be importable as top-level modules and
could shadow installed ones; the folder is swapped for the repository root, so the checkout runs whether or not
it is installed.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    _here = Path(__file__).resolve().parent
    sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _here]
    sys.path.insert(0, str(_here.parents[1]))

from llava.train.train import main  # after the path fix above, on purpose

if __name__ == "__main__":
    main()
