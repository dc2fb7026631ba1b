"""What tests in every folder share: NOW, the instant the `clock` fixture pins time at unless
a test says otherwise."""

from datetime import UTC, datetime

NOW = datetime(2026, 11, 28, 23, 30, tzinfo=UTC)
