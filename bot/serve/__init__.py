"""`lotse serve`: the process, the channels it runs, HTTP, health, jobs (room: wiring, with
`bot/app.py` and `bot/cli.py`: it composes the rooms below)."""
