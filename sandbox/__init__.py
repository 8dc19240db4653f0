"""A reference world for the demo and the tests: a legacy core-banking system and a cloud-native service.

Nothing in the platform imports this package; it imports only `core` helpers. See README.md.
"""
