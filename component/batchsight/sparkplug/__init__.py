"""The gateway as a Sparkplug B edge node (``sparkplug.enabled``; imported only then).

- node.py: the session on the mqtt.* broker (births, data, death, rebirth, sequence numbers);
- payload.py: our metrics in and out of the Sparkplug B protobuf message;
- sparkplug_b.proto: Eclipse Tahu's schema, as published (EPL-2.0), and sparkplug_b_pb2.py(i),
  protoc's output for it. To make them again after a change of the .proto or of protobuf's
  major version (grpcio-tools is needed for this only, never on a gateway):

      pip install grpcio-tools && cd component/batchsight/sparkplug && \\
      python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. sparkplug_b.proto

docs/plant-floor.md lists the metrics for a SCADA engineer.
"""
