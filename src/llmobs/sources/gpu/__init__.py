"""GPU source: NVML readings (behind the pynvml boundary) and process → pod attribution via cgroups."""

from llmobs.sources.gpu.catalogue import Catalogue, CatalogueError, FieldSpec, load_catalogue
from llmobs.sources.gpu.cgroup import CgroupInfo, model_from_cmdline, parse_cgroup, read_cgroup, read_cmdline_model
from llmobs.sources.gpu.nvml import ErrorClass, NvmlLib, classify, load_pynvml
from llmobs.sources.gpu.reader import NvmlReader
from llmobs.sources.gpu.types import GpuDevice, GpuProcess, GpuReading, GpuSample, XidCount, product_label

__all__ = [
    "Catalogue", "CatalogueError", "CgroupInfo", "ErrorClass", "FieldSpec", "GpuDevice", "GpuProcess", "GpuReading",
    "GpuSample", "NvmlLib", "NvmlReader", "XidCount", "classify", "load_catalogue", "load_pynvml",
    "model_from_cmdline", "parse_cgroup", "product_label", "read_cgroup", "read_cmdline_model",
]
