"""batchsight edge component: watch a camera drop folder, batch images to the cloud pipeline,
and publish the results as alerts on local MQTT.

The core (journal, batching, result matching) knows nothing of boto3 or MQTT; the adapters
for those live in their own modules and are chosen in ``runtime``.
"""

__version__ = "0.1.0"
