"""Department simulator: stands in for the police, court and petition systems on their topics."""
