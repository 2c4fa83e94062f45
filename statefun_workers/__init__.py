"""statefun-workers: Apache Flink Stateful Functions remote functions, served by a production worker pool.

The public API is the official Python SDK's, name for name: replace ``from statefun import ...`` with
``from statefun_workers import ...``.
"""

import os as _os
import sys as _sys

from ._version import __version__
from .address import SdkAddress
from .context import Context
from .egress import kafka_egress_message, kinesis_egress_message
from .errors import (
    BatchTimeoutError,
    ClientGoneError,
    ConfigurationError,
    FunctionError,
    MalformedRequestError,
    OverloadedError,
    RequestError,
    RequestTooLargeError,
    StatefunError,
    UnknownFunctionError,
    WorkerStoppingError,
)
from .functions import StatefulFunction, StatefulFunctions
from .handler import BatchResult, RequestReplyHandler
from .messages import EgressMessage, Message, egress_message_builder, message_builder
from .types import (
    BoolType,
    DoubleType,
    FloatType,
    IntType,
    LongType,
    StringType,
    Type,
    TypeSerializer,
    make_json_type,
    make_protobuf_type,
    simple_type,
)
from .valuespec import ValueSpec

__all__ = [
    # the official SDK's names
    "BoolType",
    "Context",
    "DoubleType",
    "EgressMessage",
    "FloatType",
    "IntType",
    "LongType",
    "Message",
    "RequestReplyHandler",
    "SdkAddress",
    "StatefulFunctions",
    "StringType",
    "Type",
    "TypeSerializer",
    "ValueSpec",
    "egress_message_builder",
    "kafka_egress_message",
    "kinesis_egress_message",
    "make_json_type",
    "make_protobuf_type",
    "message_builder",
    "simple_type",
    # ours
    "BatchResult",
    "BatchTimeoutError",
    "ClientGoneError",
    "ConfigurationError",
    "FunctionError",
    "MalformedRequestError",
    "OverloadedError",
    "RequestError",
    "RequestTooLargeError",
    "StatefulFunction",
    "StatefunError",
    "UnknownFunctionError",
    "WorkerStoppingError",
    "__version__",
]


def _repair_compiled_file_paths() -> None:
    """Give each mypyc-compiled module of this package a ``__file__`` that exists.

    NOTE: mypyc derives a compiled module's ``__file__`` from the folder of its shared library, assuming that
    library lies above the package; ours lies inside it (setup.py says why), which doubles the package folder
    in the path. Tools that open ``__file__`` would then fail.
    """
    package = _os.path.dirname(__file__)
    for name, module in list(_sys.modules.items()):
        path = getattr(module, "__file__", None)
        if name.startswith(__name__ + ".") and path and not _os.path.exists(path):
            candidate = _os.path.join(package, _os.path.basename(path))
            if _os.path.exists(candidate):
                module.__file__ = candidate


_repair_compiled_file_paths()
