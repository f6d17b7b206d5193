"""The cloud stack's sources, installed as the data package ``batchsight_stack``.

Nothing here is imported as code: the tools (the local cloud, the cost model) read
``template.yaml``, the state machine and each function's ``app.py`` from this folder as package
data, so they work the same from a checkout and from an installed wheel. Lambda never sees
this file: each function's code package is its own ``functions/<name>/`` folder.
"""
