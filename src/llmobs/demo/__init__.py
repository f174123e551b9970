"""The demo fleet `make run` scrapes: simulated vLLM replicas replaying request traces.

Internal: it exists for the demo and the tests, and changes with them; nothing here is public API.
"""

__all__: list[str] = []
