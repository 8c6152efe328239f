"""Parity with CData's published OpenAPI description: models of its schemas, and the check of traffic."""
