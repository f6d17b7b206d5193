"""The address space: a VisionSystem after OPC 40100 (machine vision), with a PLC handshake block.

    Objects/VisionSystem                          events: ResultReadyEventType, one per result
      Identification/   Manufacturer, Model, SoftwareRevision, Site, Line, Device
      VisionStateMachine/CurrentState             Preoperational | Operational | Error | Halted
      ResultManagement/
        LastResult/     ResultId, PartId, Lot, ProductId, CreationTime, ResultState, ResultEvaluation,
                        IsPartial, IsAnomalous, Confidence, AnomalyNames, JudgedBy, Model, ModelVersion,
                        FileName, Corrected, JobId
        GetResultComponentsById(ResultId) -> the same fields and Error (0 found, 1 unknown id)
        GetLastResults(Count) -> ResultIds[], PartIds[], Lots[], ResultEvaluations[], Confidences[],
                                 CreationTimes[]   (oldest first)
      PlcHandshake/     Ready, ResultReady (counter), ResultAck (written by the PLC), ResultsPending,
                        LastResultOK, LastResultNG, LastResultId, LastPartId, ErrorCode, ErrorText,
        Shift/          Start, Total, OK, NG, NotDecidable   (the current shift; PreviousShift/ alike)

Node ids are strings in the server's namespace (``ns=<index of opcua.namespace>;s=VisionSystem.PlcHandshake.Ready``),
stable across restarts and versions. The types are ours, named as OPC 40100 names them (no
companion nodeset is loaded: it would cost memory a gateway does not have); ResultState is
40100's processing state (1, Completed, for every result published) and ResultEvaluation the
verdict, as OPC 40001-101's ResultEvaluationEnum (1 OK, 2 NotOK, 3 NotDecidable).
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, cast

from asyncua import Node, Server, ua
from asyncua.common.structures104 import new_enum

from batchsight import __version__
from batchsight.opcua.book import ResultBook, ShiftTotals
from batchsight.plant_state import Condition
from batchsight.verdicts import Verdict

V = ua.VariantType
RESULT_FIELDS: tuple[tuple[str, ua.VariantType], ...] = (
    ("ResultId", V.String), ("PartId", V.String), ("Lot", V.String), ("ProductId", V.String),
    ("CreationTime", V.DateTime), ("ResultState", V.Int32), ("ResultEvaluation", V.Int32), ("IsPartial", V.Boolean),
    ("IsAnomalous", V.Boolean), ("Confidence", V.Double), ("AnomalyNames", V.String), ("JudgedBy", V.String),
    ("Model", V.String), ("ModelVersion", V.String), ("FileName", V.String), ("Corrected", V.Boolean),
    ("JobId", V.String))
HANDSHAKE_FIELDS: tuple[tuple[str, ua.VariantType], ...] = (
    ("Ready", V.Boolean), ("ResultReady", V.UInt32), ("ResultAck", V.UInt32), ("ResultsPending", V.UInt32),
    ("LastResultOK", V.Boolean), ("LastResultNG", V.Boolean), ("LastResultId", V.String), ("LastPartId", V.String),
    ("ErrorCode", V.Int32), ("ErrorText", V.String))
SHIFT_FIELDS = (("Start", V.DateTime), ("Total", V.UInt32), ("OK", V.UInt32), ("NG", V.UInt32),
                ("NotDecidable", V.UInt32))
LAST_LIST_FIELDS = (("ResultIds", V.String), ("PartIds", V.String), ("Lots", V.String),
                    ("ResultEvaluations", V.Int32), ("Confidences", V.Double), ("CreationTimes", V.DateTime))
COMPLETED = 1  # OPC 40100 ResultStateDataType: processing was carried out
NULL_TIME = datetime(1601, 1, 1, tzinfo=UTC)  # OPC UA's null DateTime (0 on the wire): no time yet
STATES = {"starting": "Preoperational", "running": "Operational", "stopped": "Halted"}
Lookup = Callable[[str], Awaitable[Verdict | None]]


def _when(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else NULL_TIME
    except ValueError:
        return NULL_TIME


def result_values(verdict: Verdict | None) -> dict[str, Any]:
    """The RESULT_FIELDS of a verdict (the defaults before the first result)."""
    if verdict is None:
        return {"ResultId": "", "PartId": "", "Lot": "", "ProductId": "", "CreationTime": NULL_TIME, "ResultState": 0,
                "ResultEvaluation": 0, "IsPartial": False, "IsAnomalous": False, "Confidence": 0.0,
                "AnomalyNames": "", "JudgedBy": "", "Model": "", "ModelVersion": "", "FileName": "",
                "Corrected": False, "JobId": ""}
    return {"ResultId": verdict.image_id, "PartId": verdict.part_id, "Lot": verdict.lot, "ProductId": verdict.model,
            "CreationTime": _when(verdict.detected_at), "ResultState": COMPLETED,
            "ResultEvaluation": int(verdict.evaluation), "IsPartial": False, "IsAnomalous": verdict.is_anomalous,
            "Confidence": verdict.confidence, "AnomalyNames": ",".join(verdict.anomaly_names),
            "JudgedBy": verdict.judged_by, "Model": verdict.model, "ModelVersion": verdict.model_version,
            "FileName": verdict.file_name, "Corrected": verdict.corrected, "JobId": verdict.batch_id}


def _argument(name: str, vtype: ua.VariantType, description: str, *, array: bool = False) -> ua.Argument:
    return ua.Argument(Name=name, DataType=ua.NodeId(ua.Int32(vtype.value)), ValueRank=1 if array else -1,
                       ArrayDimensions=[0] if array else [], Description=ua.LocalizedText(description))


class AddressSpace:
    """The nodes of one running server, and the writes that keep them current."""

    def __init__(self, server: Server, idx: int, book: ResultBook, lookup: Lookup) -> None:
        self.server, self.idx, self.book, self.lookup = server, idx, book, lookup
        self.nodes: dict[str, Node] = {}
        self.events: list[Any] = []

    def _id(self, path: str) -> ua.NodeId:
        return ua.NodeId(ua.String(path), ua.Int16(self.idx))

    async def _object(self, parent: Node, path: str) -> Node:
        node = await parent.add_object(self._id(path), ua.QualifiedName(path.rsplit(".", 1)[-1], self.idx))
        self.nodes[path] = node
        return node

    async def _variables(self, parent: Node, base: str, fields: tuple[tuple[str, ua.VariantType], ...],
                         values: dict[str, Any], types: dict[str, ua.NodeId] | None = None) -> None:
        for name, vtype in fields:
            path = f"{base}.{name}"
            value = values.get(name, NULL_TIME if vtype is V.DateTime else ua.get_default_value(vtype))
            node = await parent.add_variable(self._id(path), ua.QualifiedName(name, self.idx),
                                             ua.Variant(value, vtype), varianttype=vtype,
                                             datatype=(types or {}).get(name))
            self.nodes[path] = node

    async def build(self, *, site: str, line: str, device: str) -> None:
        objects = self.server.nodes.objects
        vision = await self._object(objects, "VisionSystem")
        ident = await self._object(vision, "VisionSystem.Identification")
        for name, value in (("Manufacturer", "batchsight"), ("Model", "batchsight edge inspector"),
                            ("SoftwareRevision", __version__), ("Site", site), ("Line", line), ("Device", device)):
            await ident.add_property(self._id(f"VisionSystem.Identification.{name}"),
                                     ua.QualifiedName(name, self.idx), value, varianttype=V.String)
        machine = await self._object(vision, "VisionSystem.VisionStateMachine")
        self.nodes["State"] = await machine.add_variable(
            self._id("VisionSystem.VisionStateMachine.CurrentState"), ua.QualifiedName("CurrentState", 0),
            ua.LocalizedText("Preoperational"), varianttype=V.LocalizedText)
        evaluation = await new_enum(self.server, self.idx, "ResultEvaluationEnum",
                                    ["Undefined", "OK", "NotOK", "NotDecidable"])
        types = {"ResultEvaluation": evaluation.nodeid}
        results = await self._object(vision, "VisionSystem.ResultManagement")
        last = await self._object(results, "VisionSystem.ResultManagement.LastResult")
        await self._variables(last, "VisionSystem.ResultManagement.LastResult", RESULT_FIELDS, result_values(None),
                              types)
        await self._methods(results)
        handshake = await self._object(vision, "VisionSystem.PlcHandshake")
        await self._variables(handshake, "VisionSystem.PlcHandshake", HANDSHAKE_FIELDS,
                              {"Ready": False, "ResultReady": self.book.counter, "ResultAck": self.book.ack,
                               "ResultsPending": self.book.pending, "LastResultOK": False, "LastResultNG": False,
                               "LastResultId": "", "LastPartId": "", "ErrorCode": 0, "ErrorText": ""})
        for shift in ("Shift", "PreviousShift"):
            folder = await self._object(handshake, f"VisionSystem.PlcHandshake.{shift}")
            await self._variables(folder, f"VisionSystem.PlcHandshake.{shift}", SHIFT_FIELDS, {})
        ack = self.nodes["VisionSystem.PlcHandshake.ResultAck"]
        await ack.set_writable()
        self.server.set_attribute_value_setter(ack.nodeid, self._ack_written)
        await self._events(vision, types)
        await self.write_shifts()

    async def _events(self, vision: Node, types: dict[str, ua.NodeId]) -> None:
        etype = await self.server.create_custom_event_type(
            self.idx, "ResultReadyEventType", ua.ObjectIds.BaseEventType, [(n, t) for n, t in RESULT_FIELDS])
        await self.server.nodes.server.add_reference(vision.nodeid, ua.ObjectIds.HasNotifier)
        here = await self.server.get_event_generator(etype, vision.nodeid)
        there = await self.server.get_event_generator(etype, ua.ObjectIds.Server)  # for clients watching Server
        there.event.SourceNode, there.event.SourceName = vision.nodeid, "VisionSystem"
        self.events = [here, there]

    async def _methods(self, results: Node) -> None:
        base = "VisionSystem.ResultManagement"
        await results.add_method(
            self._id(f"{base}.GetResultComponentsById"), ua.QualifiedName("GetResultComponentsById", self.idx),
            self._get_by_id, [_argument("ResultId", V.String, "the image id (SHA-256 of its bytes)")],
            [_argument(name, vtype, name) for name, vtype in (*RESULT_FIELDS[1:], ("Error", V.Int32))])
        await results.add_method(
            self._id(f"{base}.GetLastResults"), ua.QualifiedName("GetLastResults", self.idx), self._last_n,
            [_argument("Count", V.UInt32, f"how many (at most {self.book.keep})")],
            [_argument(name, vtype, name, array=True) for name, vtype in LAST_LIST_FIELDS])

    async def _get_by_id(self, _parent: ua.NodeId, result_id: ua.Variant) -> list[ua.Variant]:
        wanted = str(result_id.Value or "")
        verdict = self.book.find(wanted) or await self.lookup(wanted)
        values = result_values(verdict)
        return [ua.Variant(values[n], t) for n, t in RESULT_FIELDS[1:]] + [ua.Variant(0 if verdict else 1, V.Int32)]

    async def _last_n(self, _parent: ua.NodeId, count: ua.Variant) -> list[ua.Variant]:
        rows = [result_values(v) for v in self.book.last_n(int(count.Value or 0))]
        columns = ("ResultId", "PartId", "Lot", "ResultEvaluation", "Confidence", "CreationTime")
        return [ua.Variant([row[name] for row in rows], vtype)
                for name, (_, vtype) in zip(columns, LAST_LIST_FIELDS, strict=True)]

    def _ack_written(self, node: Any, attr: ua.AttributeIds, value: ua.DataValue) -> None:
        """The PLC wrote ResultAck: keep it, and say how many results wait for it."""
        node.attributes[attr].value = value
        self.book.acknowledge(int(value.Value.Value or 0) if value.Value else 0)
        pending = self.nodes["VisionSystem.PlcHandshake.ResultsPending"]
        # a setter cannot await: the loop writes ResultsPending right after this write
        asyncio.ensure_future(self.server.write_attribute_value(
            pending.nodeid, ua.DataValue(ua.Variant(self.book.pending, V.UInt32))))

    # --- updates ----------------------------------------------------------------------------------
    async def _write(self, values: dict[str, tuple[Any, ua.VariantType]]) -> None:
        stamp = cast(ua.DateTime, datetime.now(UTC))
        for path, (value, vtype) in values.items():
            variant = ua.LocalizedText(value) if vtype is V.LocalizedText else value
            await self.server.write_attribute_value(
                self.nodes[path].nodeid, ua.DataValue(ua.Variant(variant, vtype), SourceTimestamp=stamp,
                                                      ServerTimestamp=stamp))

    async def results(self, verdicts: list[Verdict]) -> None:
        """Count each verdict, raise its event, then show the last one (one write per tag per batch)."""
        for verdict in verdicts:
            self.book.add(verdict)
            values = result_values(verdict)
            for generator in self.events:
                for name, _ in RESULT_FIELDS:
                    setattr(generator.event, name, values[name])
                generator.event.Severity = 500 if verdict.evaluation == 2 else 100
                await generator.trigger(message=f"result {verdict.evaluation.name} part {verdict.part_id or '-'}")
        last = self.book.last
        if last is None:
            return
        values = result_values(last)
        base, hs = "VisionSystem.ResultManagement.LastResult", "VisionSystem.PlcHandshake"
        await self._write({f"{base}.{n}": (values[n], t) for n, t in RESULT_FIELDS})
        await self._write({f"{hs}.ResultReady": (self.book.counter, V.UInt32),
                           f"{hs}.ResultsPending": (self.book.pending, V.UInt32),
                           f"{hs}.LastResultOK": (values["ResultEvaluation"] == 1, V.Boolean),
                           f"{hs}.LastResultNG": (values["ResultEvaluation"] == 2, V.Boolean),
                           f"{hs}.LastResultId": (last.image_id, V.String),
                           f"{hs}.LastPartId": (last.part_id, V.String)})
        await self.write_shifts()

    async def write_shifts(self) -> None:
        shifts: list[tuple[str, ShiftTotals | None]] = [("Shift", self.book.current_shift),
                                                        ("PreviousShift", self.book.previous_shift)]
        for name, totals in shifts:
            if totals is None:
                continue
            base = f"VisionSystem.PlcHandshake.{name}"
            await self._write({f"{base}.Start": (totals.start.astimezone(UTC), V.DateTime),
                               f"{base}.Total": (totals.total, V.UInt32), f"{base}.OK": (totals.ok, V.UInt32),
                               f"{base}.NG": (totals.ng, V.UInt32),
                               f"{base}.NotDecidable": (totals.not_decidable, V.UInt32)})

    async def condition(self, now: Condition) -> None:
        hs = "VisionSystem.PlcHandshake"
        state = "Error" if now.state == "running" and not now.ready else STATES.get(now.state, "Preoperational")
        await self._write({"State": (state, V.LocalizedText), f"{hs}.Ready": (now.ready, V.Boolean),
                           f"{hs}.ErrorCode": (now.error_code, V.Int32), f"{hs}.ErrorText": (now.error_text, V.String)})
