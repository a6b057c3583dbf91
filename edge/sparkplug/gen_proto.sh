#!/bin/sh
# Regenerate sparkplug_b_pb2.py/.pyi from sparkplug_b.proto (the Sparkplug B 3.0 payload schema,
# EPL-2.0, as published with the specification). Needs grpcio-tools (not a runtime dependency):
#   python -m venv /tmp/protoc && /tmp/protoc/bin/pip install grpcio-tools
#   PYTHON=/tmp/protoc/bin/python edge/sparkplug/gen_proto.sh
# The generated code requires a protobuf runtime of the same major version and no older than the
# generator (see the `protobuf` pin in pyproject.toml).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
"${PYTHON:-python3}" -m grpc_tools.protoc -I. --python_out=. --pyi_out=. sparkplug_b.proto
