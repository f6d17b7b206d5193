"""A site on one local stack: many gateways on several models (``bench/site.py``).

``run`` builds the stack and the model routes and drives the gateways; ``gateway`` is one
simulated gateway; ``report`` turns what they saw into the per-model table and the checks.
"""
