"""Moved to ``playground.botproc`` (the playground is product code); kept so that tests written before the
move still import it."""

import sys

import playground.botproc as _moved

sys.modules[__name__] = _moved
