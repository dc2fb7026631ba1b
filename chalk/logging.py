"""`from chalk.logging import chalk_logger`, as Chalk's own chalk package spells it."""

from chalk import chalk_logger

__all__ = ["chalk_logger"]
