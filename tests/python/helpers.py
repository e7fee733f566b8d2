"""Shared by the Python tests: where the fixtures are."""

import os

FIXTURES = os.environ.get("OTA_FIXTURES") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")


def fixture(rel):
    """The bytes of tests/fixtures/<rel>."""
    with open(os.path.join(FIXTURES, rel), "rb") as f:
        return f.read()
