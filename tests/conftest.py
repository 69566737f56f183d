"""Shared pytest setup: real-server fixtures and chat helpers, loaded as plugins."""

pytest_plugins = [
    "tests.support",  # first: the server plugins import it; loaded first, its asserts are rewritten
    "tests.servers.mail",
    "tests.servers.postgres",
    "tests.servers.rasa",
    "tests.servers.synapse",
    "tests.servers.telegram_api",
]
