"""Regenerates the committed code in `proto/` from `proto/externalscaler.proto` (KEDA's protocol) and
`proto/answers.proto` (the opt-in native front end's answer table: messages only, no service).

The generated modules are committed (with grpcio-tools and protobuf pinned in pyproject) so that an
install needs no protoc; tests/serving/scaler/test_scaler_proto.py regenerates into a temporary folder and fails on any
difference. grpc's generator writes an absolute `import externalscaler_pb2`, which only works with the
output folder on sys.path; we rewrite it to a relative import so the modules live inside the package.

Run: `python -m llmobs.serving.scaler.codegen` (needs the dev extra: grpcio-tools).
"""

from __future__ import annotations

import sys
from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parent / "proto"
PROTO = PROTO_DIR / "externalscaler.proto"
ANSWERS_PROTO = PROTO_DIR / "answers.proto"
GENERATED = ("externalscaler_pb2.py", "externalscaler_pb2.pyi", "externalscaler_pb2_grpc.py",
             "answers_pb2.py", "answers_pb2.pyi")
_ABSOLUTE_IMPORT = "import externalscaler_pb2 as externalscaler__pb2"
_RELATIVE_IMPORT = "from . import externalscaler_pb2 as externalscaler__pb2"


def generate(out_dir: Path, proto: Path = PROTO) -> list[Path]:
    """Run protoc (from grpcio-tools) on both protos into `out_dir`; return the generated files."""
    from grpc_tools import protoc  # dev-only dependency: imported here so the runtime never needs it

    out_dir.mkdir(parents=True, exist_ok=True)
    args = ["protoc", f"-I{proto.parent}", f"--python_out={out_dir}", f"--pyi_out={out_dir}",
            f"--grpc_python_out={out_dir}", proto.name]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {proto}")
    grpc_module = out_dir / "externalscaler_pb2_grpc.py"
    text = grpc_module.read_text()
    if _ABSOLUTE_IMPORT not in text:
        raise RuntimeError(f"unexpected grpc generator output: {_ABSOLUTE_IMPORT!r} not found")
    grpc_module.write_text(text.replace(_ABSOLUTE_IMPORT, _RELATIVE_IMPORT))
    if protoc.main(["protoc", f"-I{ANSWERS_PROTO.parent}", f"--python_out={out_dir}", f"--pyi_out={out_dir}",
                    ANSWERS_PROTO.name]) != 0:
        raise RuntimeError(f"protoc failed on {ANSWERS_PROTO}")
    return [out_dir / name for name in GENERATED]


if __name__ == "__main__":
    for path in generate(Path(sys.argv[1]) if len(sys.argv) > 1 else PROTO_DIR):
        print(path)
