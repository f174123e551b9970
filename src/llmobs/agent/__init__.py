"""The node agent (`llmobs agent`) and the GPU/attribution/cost collectors both modes register."""

from llmobs.agent.attribution import (
    EndpointInfo,
    ProcessOnGpu,
    agent_endpoint_infos,
    attribute_processes,
    central_endpoint_infos,
    central_usage,
)
from llmobs.agent.central import register_central_collectors
from llmobs.agent.cli import register
from llmobs.agent.collectors import CostCollector, EndpointInfoCollector, GpuCollector, WatchStatsCollector
from llmobs.agent.config import AgentConfig, load_agent_config
from llmobs.agent.cost import CostConfig, EndpointUsage, cost_per_1k_generated_tokens

__all__ = [
    "AgentConfig", "CostCollector", "CostConfig", "EndpointInfo", "EndpointInfoCollector", "EndpointUsage",
    "GpuCollector", "ProcessOnGpu", "WatchStatsCollector", "agent_endpoint_infos", "attribute_processes",
    "central_endpoint_infos", "central_usage", "cost_per_1k_generated_tokens", "load_agent_config", "register",
    "register_central_collectors",
]
