"""Room: storage. Tables, the store (SQLite or PostgreSQL) and its migrations; the
services write through it, channels never read it."""
