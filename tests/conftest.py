"""Shared pytest setup: real-server fixtures and chat helpers, loaded as plugins."""

pytest_plugins = ["tests.servers.postgres", "tests.support"]
