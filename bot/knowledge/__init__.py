"""Room: knowledge. The YAML knowledge base as typed models, loaded, validated and
reloaded live (`registry.py`), and what follows from it alone: the names users call programs
by (`lexicon.py`), whose account an address is (`accounts.py`), its plain-text renderings
(`render.py`). The bottom room: it imports no other, only the leaf modules (`bot.i18n`,
`bot.normalize`, `bot.numbers`)."""
