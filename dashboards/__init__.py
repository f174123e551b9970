"""llmobs Grafana dashboards as code: :mod:`dashboards.build` (generator), :mod:`dashboards.queries`."""
