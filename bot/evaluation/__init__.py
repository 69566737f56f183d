"""Room: tools. `lotse eval`: the conversation and redaction corpora measured."""
