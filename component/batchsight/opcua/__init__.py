"""The gateway's OPC UA server (asyncua): the inspection system a PLC or SCADA integrates without
custom code. Off unless ``opcua.enabled``; this package (and asyncua) is imported only then.

- server.py: its own thread and asyncio loop, started, stopped and rebuilt with the component;
- space.py: the address space, after OPC 40100 (machine vision), with the PLC handshake block;
- book.py: the counters, last results and shift counts it shows;
- security.py, users.py: certificates, the trust list, users, and the refusals.

docs/plant-floor.md is the guide for a controls engineer.
"""
from batchsight.opcua.server import OpcUaServer, client_endpoint

__all__ = ["OpcUaServer", "client_endpoint"]
