"""The `strangler` command: the composition root that wires the parts together for operators."""
