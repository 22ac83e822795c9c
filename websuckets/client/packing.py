"""MessagePack for the client's ``format="msgpack"``: packing commands, unpacking events. No I/O.

The client's own small copy of what the server does in `websuckets.msgpack_codec`: the client
stands on the bottom modules alone (see docs/topics/architecture.md). ormsgpack (the
``websuckets[msgpack]`` extra) is imported when a client asks for MessagePack.
"""

from __future__ import annotations

import importlib
from functools import cache
from types import ModuleType
from typing import Any

from pydantic_core import to_jsonable_python


@cache
def _ormsgpack() -> ModuleType:
    try:
        return importlib.import_module("ormsgpack")
    except ImportError:
        raise ImportError(
            "MessagePack needs ormsgpack, which is not installed: pip install 'websuckets[msgpack]'"
        ) from None


def pack(value: Any) -> bytes:
    """``value`` as MessagePack: pydantic models, dataclasses, datetimes and UUIDs included; ``bytes`` raw."""
    ormsgpack = _ormsgpack()
    return ormsgpack.packb(value, default=_default, option=ormsgpack.OPT_SERIALIZE_PYDANTIC)  # type: ignore[no-any-return]


def unpack(data: bytes) -> Any:
    """The value of one frame; `ValueError` when it is not MessagePack."""
    ormsgpack = _ormsgpack()
    try:
        return ormsgpack.unpackb(data)
    except ormsgpack.MsgpackDecodeError as exc:
        raise ValueError(str(exc)) from None


def _default(value: Any) -> Any:
    return to_jsonable_python(value, fallback=str)
