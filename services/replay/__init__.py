"""Replay: developers' and operators' tools over the event log (not a service; it runs from the CLI).

It reads topics through shared.messaging.log and may use the services' pure domain logic (the
router's decisions for what-if, the audit's write path for rebuilds); no service imports it.
"""
