"""``bench/overload.py``: the real pipeline under moto, fed beyond one unit's rate for a long run.

- ``run``: the local cloud with a slow model and a ceiling, the feeder (uploads and enqueues as
  gateways do) and the sampler (queue, results, the gateway's own housekeeping);
- ``metrics``: the functions' EMF metrics (ScaleUnits, Overloaded) caught from stdout;
- ``report``: the table over time and the summary; ``cli``: the command line.
"""
