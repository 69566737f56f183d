"""`lotse serve`: the process, the channels it runs, HTTP, health, jobs (room: process)."""
