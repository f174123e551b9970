"""GPU source: NVML readings (behind the pynvml boundary) and process → pod attribution via cgroups.

Names load on first use (llmobs._lazy): the cgroup and type modules need no NVML bindings, which only
the `[agent]` extra installs.
"""

from llmobs._lazy import lazy_exports

_EXPORTS = {
    "Catalogue": "catalogue", "CatalogueError": "catalogue", "FieldSpec": "catalogue", "load_catalogue": "catalogue",
    "CgroupInfo": "cgroup", "model_from_cmdline": "cgroup", "parse_cgroup": "cgroup", "read_cgroup": "cgroup",
    "read_cmdline_model": "cgroup", "ErrorClass": "nvml", "NvmlLib": "nvml", "classify": "nvml",
    "load_pynvml": "nvml", "NvmlReader": "reader", "GpuDevice": "types", "GpuProcess": "types",
    "GpuReading": "types", "GpuSample": "types", "XidCount": "types", "product_label": "types",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
