"""Room: understanding. Text in, an `Understanding` (intent, entities) out: the lexicon,
Rasa, and both together."""
