"""Predictor service: learns from execution telemetry and answers latency questions."""
