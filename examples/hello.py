"""Hello, Chalkweb: `python examples/hello.py` deploys this function to CHALK_COMPUTE_URL,
which then runs it every five minutes."""

import chalkcompute
from chalk import chalk_logger


@chalkcompute.function(name="hello", schedule="*/5 * * * *", timeout=60)
def hello() -> None:
    chalk_logger.info("hello from Chalkweb")
