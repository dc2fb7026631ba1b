"""`from chalk import chalk_logger`: the logger whose records reach a run's log with their level."""

import logging

chalk_logger = logging.getLogger("chalk")
if chalk_logger.level == logging.NOTSET:
    # Outside a run nothing configures logging; INFO keeps `chalk_logger.info` visible then.
    chalk_logger.setLevel(logging.INFO)

__all__ = ["chalk_logger"]
