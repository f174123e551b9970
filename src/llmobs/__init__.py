"""llmobs: observability and autoscaling signals for self-hosted vLLM fleets."""

__version__ = "0.1.0"
