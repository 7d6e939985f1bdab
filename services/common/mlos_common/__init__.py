"""Shared bootstrap, settings, telemetry, error mapping and tensor codec for MLOS services."""
