"""Measurements of the bot's parts on labelled data (`lotse eval …`)."""
