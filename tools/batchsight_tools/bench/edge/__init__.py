"""``bench/edge.py``: the edge program's own costs, each next to a baseline measured in the same run.

One module per section (``ingest``, ``upload``, ``latency``, ``memory``, ``detection``), each a
``bench_<section>(data, sizes, work, figures)`` that adds its figures; around them:

- ``figures``: a figure with its baseline and goal, printed as one line, and the summary;
- ``sizes``: how much work a section does (full or ``--quick``);
- ``inputs``: the sample images, distinct copies of them, the edge configuration;
- ``component``: the component in this process (its logs, a journal filled quickly);
- ``proc``: what ``/proc`` says about a process's memory;
- ``cli``: the command line and the run.
"""
