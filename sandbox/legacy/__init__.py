"""The legacy core-banking system: `cbs` schema, `/CBS/...` HTTP API with legacy return codes."""
