"""The agents' chat: helpdesk agents see tickets in a Telegram group or a Matrix room and answer.
Room: agents' chats (above the channels, below the process that composes both).

`commands.py` reads what agents type and tap, `cards.py` writes what they see, `desk.py` connects
both to the ticket service; `telegram.py` and `matrix.py` are the platform glue.
"""
