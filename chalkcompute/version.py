"""The one version of Chalkweb: the server's distribution and the SDK's (`chalkweb-sdk`) both
read it (pyproject.toml's dynamic version, sdk/distribution.py)."""

VERSION = "0.1.0"
