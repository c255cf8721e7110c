"""Puts the generated code (gen/python at the repository's root) on sys.path,
so that `import roomcast.v1.broker_pb2` works without installing anything."""

import pathlib
import sys

# Leave no __pycache__ in gen/python, which must stay exactly what
# `go tool -modfile=tools/go.mod buf generate` makes (.ci/run checks it).
sys.dont_write_bytecode = True

GEN = pathlib.Path(__file__).resolve().parents[2] / "gen" / "python"
if str(GEN) not in sys.path:
    sys.path.insert(0, str(GEN))
