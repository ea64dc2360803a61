"""Mediation: OneWindow's own mediation units (三调联动, 诉调对接)."""
