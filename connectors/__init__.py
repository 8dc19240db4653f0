"""Everything that crosses to another system: upstream HTTP clients, adapters, the outbox relay and event applier."""
