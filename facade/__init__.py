"""The HTTP front door: one Flask app (built by create_app) that routes each capability per its live mode."""
