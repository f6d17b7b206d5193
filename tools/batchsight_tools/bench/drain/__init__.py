"""``bench/pipeline_drain.py``: drain efficiency of the batch pipeline under moto.

- ``setup``: the run's parameters, its ideal throughput and the targets;
- ``fixed_latency_backend``: the model, a plug-in backend with a fixed per-call latency;
- ``moto_clock``: the cheaper SQS clock for moto;
- ``inputs``: the JPEGs, uploaded and queued as the edge does;
- ``baseline``: the same backend and limiter fed from memory, no AWS;
- ``probe``: moto's ceiling for the drain's calls;
- ``pipeline``: one execution of the real state machine, read back from its history;
- ``table``: the figures and what limits; ``cli``: the command line and the run.
"""
