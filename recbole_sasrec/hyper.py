"""Former home of the tuning code, now ``recbole_sasrec.tuning``; kept so that
``from recbole_sasrec.hyper import run_hyperopt`` keeps working."""

from .tuning import *  # noqa: F403
from .tuning import __all__  # noqa: F401
