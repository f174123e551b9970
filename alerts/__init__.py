"""llmobs Prometheus rules as code: :mod:`alerts.config` (knobs) and :mod:`alerts.rules` (generator)."""
