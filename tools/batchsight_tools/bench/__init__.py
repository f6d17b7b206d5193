"""The measuring code of the benchmark scripts in the repository's ``bench/`` folder.

Each script there is a short entry point (its docstring says what it measures and how to run
it); the sections, baselines and tables live here, one module per job, so that they import
like the rest of the tools (no ``sys.path`` games) and are type-checked with them.

- ``edge``: ``bench/edge.py``, the gateway program's own costs;
- ``drain``: ``bench/pipeline_drain.py``, the drain's efficiency under moto.
"""
