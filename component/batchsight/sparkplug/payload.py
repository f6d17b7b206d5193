"""Sparkplug B payloads: our metrics in and out of Eclipse Tahu's protobuf message.

Each metric carries its value in the field its Sparkplug data type names (3.0, section 6.4.16):
the 8- to 32-bit integers in ``int_value`` and the 64-bit ones and DateTime (milliseconds since
the epoch) in ``long_value``, both unsigned on the wire, so a negative value is written as its
two's complement and read back the same way.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from batchsight.sparkplug.sparkplug_b_pb2 import DataType, Payload

INT32_TYPES = frozenset({DataType.Int8, DataType.Int16, DataType.Int32, DataType.UInt8, DataType.UInt16,
                         DataType.UInt32})
INT64_TYPES = frozenset({DataType.Int64, DataType.UInt64, DataType.DateTime})
SIGNED = frozenset({DataType.Int8, DataType.Int16, DataType.Int32, DataType.Int64})
FIELDS: dict[int, str] = {
    DataType.Float: "float_value", DataType.Double: "double_value", DataType.Boolean: "boolean_value",
    DataType.String: "string_value", DataType.Text: "string_value", DataType.UUID: "string_value",
    DataType.Bytes: "bytes_value"}


@dataclass(frozen=True)
class Metric:
    """One named value; ``None`` is sent as a null (``is_null``), as a metric whose value is unknown."""

    name: str
    datatype: int
    value: Any


@dataclass(frozen=True)
class Decoded:
    timestamp: int
    seq: int | None
    metrics: dict[str, Any]


def _field(datatype: int) -> str:
    if datatype in INT32_TYPES:
        return "int_value"
    if datatype in INT64_TYPES:
        return "long_value"
    return FIELDS[datatype]


def _wire(datatype: int, value: Any) -> Any:
    if isinstance(value, datetime):
        value = int(value.timestamp() * 1000)
    if datatype in INT32_TYPES:
        return int(value) & 0xFFFFFFFF
    if datatype in INT64_TYPES:
        return int(value) & 0xFFFFFFFFFFFFFFFF
    return value


def _value(datatype: int, raw: Any) -> Any:
    """A signed integer back from the unsigned 32 or 64 bits it travelled in."""
    if datatype not in SIGNED:
        return raw
    width = 64 if datatype in INT64_TYPES else 32
    return raw - (1 << width) if raw >= 1 << (width - 1) else raw


def encode(metrics: Iterable[Metric], *, timestamp: int, seq: int | None) -> bytes:
    """A payload (NBIRTH, DBIRTH, NDATA, DDATA or NDEATH); NDEATH alone has no ``seq``."""
    payload = Payload(timestamp=timestamp)
    if seq is not None:
        payload.seq = seq
    for metric in metrics:
        out = payload.metrics.add(name=metric.name, datatype=metric.datatype, timestamp=timestamp)
        if metric.value is None:
            out.is_null = True
        else:
            setattr(out, _field(metric.datatype), _wire(metric.datatype, metric.value))
    return payload.SerializeToString()


def decode(body: bytes) -> Decoded:
    """A payload's metrics by name (what an NCMD asks for; what a test's consumer reads)."""
    payload = Payload.FromString(body)
    metrics = {m.name: None if m.is_null else _value(m.datatype, getattr(m, _field(m.datatype)))
               for m in payload.metrics}
    return Decoded(payload.timestamp, payload.seq if payload.HasField("seq") else None, metrics)
