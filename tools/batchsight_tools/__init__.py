"""batchsight's tools for people: the demo and the local cloud, the cost model and the planner,
the HTML report, synthetic images, and the measuring code of the benchmarks in bench/.

They run on a person's machine and may import the gateway program (``batchsight``), the
detector (``batchsight_detector``) and the cloud functions (``batchsight_pipeline`` and the
stack's sources, ``batchsight_tools.stack``); nothing imports them.
"""
