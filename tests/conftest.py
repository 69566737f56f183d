"""Shared pytest setup: real-server fixtures in `tests/servers/`, chat helpers in `tests/support`."""

pytest_plugins = ["tests.servers.postgres", "tests.support"]
