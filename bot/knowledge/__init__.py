"""Room: knowledge. The YAML knowledge base as typed models, loaded, validated and
reloaded live (`registry.py`); the bottom room, importing no other."""
