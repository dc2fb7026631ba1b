"""The runner: `python -m chalkcompute.runtime` runs one attempt of a function (see runner.py)."""
