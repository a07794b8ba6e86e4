"""Moved to ``playground.emulator`` (the playground is product code); kept so that tests written before the
move still import it."""

import sys

import playground.emulator as _moved

sys.modules[__name__] = _moved
