"""Lotse, a helpdesk chatbot for mail-client setup.

The code is in rooms, each a package or a top-level module, each importing only the rooms
below it (README, "How it is built"; `[tool.importlinter]` in pyproject.toml holds the order):
the leaf modules (`i18n`, `normalize`, `clock`, ...) -> `gate.py` and the command table
(`commands.py`) -> knowledge -> understanding -> engine (pure) and storage -> `turns.py` (what
a turn, an action handler and a turn middleware see) -> the services beside a turn (`check/`,
`profiles/`, `tickets/`) -> the conversation service (`conversation.py`) -> the channels
(`channels/`) -> the agents' chats (`agents/`) -> the wiring (`app.py`, then `serve/` and
`evaluation/`, then `cli.py`).
"""
