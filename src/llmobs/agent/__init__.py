"""The node agent (`llmobs agent`) and the GPU/attribution/cost collectors both modes register.

Names load on first use (llmobs._lazy), so the root config can embed `llmobs.agent.cost.CostConfig`
without importing the agent's server, NVML bindings or the Kubernetes client.
"""

from llmobs._lazy import lazy_exports

_EXPORTS = {
    "EndpointInfo": "attribution", "ProcessOnGpu": "attribution", "agent_endpoint_infos": "attribution",
    "attribute_processes": "attribution", "central_endpoint_infos": "attribution", "central_usage": "attribution",
    "register_central_collectors": "central", "register": "cli", "CostCollector": "collectors",
    "EndpointInfoCollector": "collectors", "GpuCollector": "collectors", "WatchStatsCollector": "collectors",
    "AgentConfig": "config", "load_agent_config": "config", "CostConfig": "cost", "EndpointUsage": "cost",
    "cost_per_1k_generated_tokens": "cost",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
