"""One module per revision of the control-plane schema, oldest first by `down_revision`."""
