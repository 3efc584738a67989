"""Triton's model-configuration schema: the ``model_config.proto`` messages that ``tritonclient`` ships.

Triton reads ``config.pbtxt`` as protobuf text format of ``inference.ModelConfig`` (Triton model
configuration docs, "Model Configuration"); parsing a generated file with that message
(``google.protobuf.text_format.Parse``) rejects a misspelt field, a wrong enum value or a value of
the wrong type, as the server would. ``tritonclient`` installs the generated module as
``tritonclient/grpc/model_config_pb2.py``; importing it through ``tritonclient.grpc`` needs the
``grpc`` extra (grpcio), which only the gRPC client uses, so the module is loaded here from its
file, needing only protobuf (``pip install 'lookupvit-deploy[triton]'``).
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import UserError

INSTALL_HINT = "pip install 'tritonclient[http]' (or: pip install -e '.[triton]' from a source checkout)."


@cache
def model_config_module() -> ModuleType:
    """``model_config_pb2`` of the installed tritonclient (raises UserError without it)."""
    spec = importlib.util.find_spec("tritonclient")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("tritonclient is not installed: Triton's model-configuration schema comes with it.", INSTALL_HINT)
    for root in spec.submodule_search_locations:
        path = Path(root) / "grpc" / "model_config_pb2.py"
        if path.is_file():
            mspec = importlib.util.spec_from_file_location("lookupvit_triton_model_config_pb2", path)
            assert mspec is not None and mspec.loader is not None
            module = importlib.util.module_from_spec(mspec)
            mspec.loader.exec_module(module)
            return module
    raise UserError("The installed tritonclient has no grpc/model_config_pb2.py (Triton's model-configuration schema).",
                    INSTALL_HINT)


def parse_config(text: str, where: str = "config.pbtxt") -> Any:
    """``text`` parsed as ``inference.ModelConfig``; a UserError naming the line on any schema error."""
    from google.protobuf import text_format

    msg = model_config_module().ModelConfig()
    try:
        text_format.Parse(text, msg)
    except text_format.ParseError as e:
        raise UserError(f"{where} does not follow Triton's model-configuration schema: {e}.",
                        "Fix the field named (see Triton's model_config.proto).") from None
    return msg


def schema_available() -> bool:
    try:
        model_config_module()
    except UserError:
        return False
    return True
