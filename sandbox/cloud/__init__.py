"""The cloud-native service: `cloud` schema, `/v1/...` portal API with RFC 9457 problems."""
