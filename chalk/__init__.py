"""`from chalk import chalk_logger`: the logger whose records reach a run's log with their level."""

import logging

chalk_logger = logging.getLogger("chalk")
if chalk_logger.level == logging.NOTSET:
    # Outside a run its records go where the program's logging sends them, INFO and up (with
    # no logging configured, Python itself shows only warnings and errors). In a run, every
    # record from DEBUG reaches the run's log (chalkcompute/runtime/child.py).
    chalk_logger.setLevel(logging.INFO)

__all__ = ["chalk_logger"]
