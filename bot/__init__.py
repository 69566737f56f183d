"""Lotse, a helpdesk chatbot for mail-client setup.

The code is in rooms, each a package, each importing only the rooms below it (README, "How it
is built"): knowledge -> understanding -> engine (pure) -> service (`conversation.py` with its
action handlers `check/`, `profiles/`, `tickets/`) -> storage; above the service the channels
(`channels/`), the agents' chats (`agents/`), and the wiring (`app.py`, `serve/`, `cli.py`).
"""
