"""S3 and SQS throttle the gateway for a stretch: the backlog waits, then drains, nothing lost or doubled.

A real HTTP proxy (``faults.FaultProxy``) sits between the edge process and moto. For a
stretch it answers S3 PUTs with ``503 SlowDown`` and SQS calls with ``RequestThrottled``, in
the exact wire shape AWS uses, in three phases while the camera keeps dropping images:

1. every S3 PUT and every SQS call refused,
2. every SQS call throttled (uploads succeed again, nothing can be enqueued),
3. half of each refused (botocore's own retry absorbs most of those).

A phase lasts its seconds and, for the first two, until the component has actually run into
its fault at least once (its own backoff decides when it tries again), so each service is
hit on every run.

Where botocore's retries run out, the component backs off and says ``"cloud": "unreachable"``
on its status topic. Then everything passes again, and the backlog must drain with one result
document, one result message and (for defects) one alert per image.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from batchsight_tools.localcloud.stack import CREDENTIALS
from batchsight_tools.synth import generate
from tests.edge_process import Edge, listen, result_keys, start_camera, write_config
from tests.reliability.faults import FaultProxy
from tests.support import CloudFixture, report_reliability, wait_for

pytestmark = pytest.mark.integration
IMAGES = 24
# (faults, at least this many seconds, and until this fault was injected at least once)
PHASES = [({"s3_put": 1.0, "sqs": 1.0}, 4.0, "s3_put"), ({"sqs": 1.0}, 4.0, "sqs"),
          ({"s3_put": 0.5, "sqs": 0.5}, 4.0, None)]
STRETCH = sum(seconds for _, seconds, _ in PHASES)


@pytest.fixture
def proxy(local_cloud: CloudFixture) -> Iterator[FaultProxy]:
    fault_proxy = FaultProxy(int(local_cloud.outputs.endpoint_url.rsplit(":", 1)[1]), seed=7)
    yield fault_proxy
    fault_proxy.close()


def _client(service: str, url: str) -> Any:
    return boto3.client(service, endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                        config=BotoConfig(retries={"mode": "standard", "total_max_attempts": 3}))


def test_injected_errors_have_the_aws_shape_that_botocore_retries(local_cloud: CloudFixture,
                                                                   proxy: FaultProxy) -> None:
    """The faults are only realistic if botocore parses them as AWS' throttling errors and retries them."""
    s3, sqs = _client("s3", proxy.url), _client("sqs", proxy.url)
    proxy.inject(s3_put=1.0, sqs=1.0)
    with pytest.raises(ClientError) as refused:
        s3.put_object(Bucket=local_cloud.outputs.source_bucket, Key="probe", Body=b"x")
    assert refused.value.response["Error"]["Code"] == "SlowDown"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    with pytest.raises(ClientError) as throttled:
        sqs.send_message(QueueUrl=local_cloud.outputs.queue_url, MessageBody="{}")
    assert throttled.value.response["Error"]["Code"] == "RequestThrottled"
    assert proxy.faults.injected == {"s3_put": 3, "sqs": 3}, "botocore tried each throttled call 3 times"
    proxy.clear()
    s3.put_object(Bucket=local_cloud.outputs.source_bucket, Key="probe", Body=b"x")
    sqs.send_message(QueueUrl=local_cloud.outputs.queue_url, MessageBody="{}")  # reset() empties the queue
    assert s3.get_object(Bucket=local_cloud.outputs.source_bucket, Key="probe")["Body"].read() == b"x"


def test_throttled_stretch_delays_but_never_loses_or_doubles(local_cloud: CloudFixture, mqtt_broker: Any,
                                                             proxy: FaultProxy, tmp_path: Path) -> None:
    frames = generate(tmp_path / "camera", count=IMAGES, size=96, seed=71, anomaly_rate=0.25)
    config = write_config(tmp_path, local_cloud, mqtt_broker.port)
    data = yaml.safe_load(config.read_text())
    data["aws"]["endpoint_url"] = proxy.url
    config.write_text(yaml.safe_dump(data))
    drop = tmp_path / "drop"
    drop.mkdir()
    hmi = listen(mqtt_broker.port)
    status_at: list[tuple[float, str]] = []  # (when, cloud) as the HMI saw them

    log = tmp_path / "edge.log"
    edge = Edge(config, log)
    try:
        started = time.monotonic()
        dropping = start_camera(frames, drop, lambda: STRETCH / IMAGES)
        for faults, seconds, hit in PHASES:
            proxy.inject(**faults)
            before = proxy.faults.injected[hit] if hit else 0
            phase_end, give_up = time.monotonic() + seconds, time.monotonic() + seconds + 60
            while time.monotonic() < phase_end or (hit and proxy.faults.injected[hit] == before):
                assert time.monotonic() < give_up, f"the component never called {hit} during its phase"
                unreachable = any(s.get("cloud") == "unreachable" for s in hmi.statuses)
                if unreachable and not status_at:
                    status_at.append((time.monotonic() - started, "unreachable"))
                time.sleep(0.1)
        stretch = time.monotonic() - started
        dropping.join()
        assert status_at, "the status topic said the cloud was unreachable during the stretch"
        assert len(hmi.results) < IMAGES, "the stretch held results back"
        proxy.clear()
        recover_s = wait_for(lambda: len(hmi.results) >= IMAGES, 120, "the backlog to drain after the stretch")
        wait_for(lambda: hmi.statuses and hmi.statuses[-1].get("cloud") == "ok", 30,
                 "the status to say the cloud is back")
        time.sleep(1.0)  # a duplicate would arrive now
    finally:
        proxy.clear()
        assert edge.stop() == 0
        hmi.stop()

    keys = result_keys(local_cloud)
    assert len(keys) == len(set(keys)) == IMAGES, "exactly one result document per image"
    assert {m["file_name"] for _, m in hmi.results.values()} == {f.path.name for f in frames}
    assert hmi.duplicates == 0, "one result message per image"
    anomalous = {i for i, (_, m) in hmi.results.items() if m["is_anomalous"]}
    assert set(hmi.alerts) == anomalous, "one alert per anomalous result, no more"
    injected = proxy.faults.injected
    assert injected["s3_put"] > 0 and injected["sqs"] > 0, f"faults really hit both services: {injected}"
    logged = log.read_text()
    assert "SlowDown" in logged or "RequestThrottled" in logged, "the log names the throttling"
    print(f"\nthrottling: {injected['s3_put']} S3 PUTs answered SlowDown, {injected['sqs']} SQS calls "
          f"throttled; unreachable on the status topic {status_at[0][0]:.1f} s into the {stretch:.1f} s stretch")
    report_reliability("s3-sqs-throttled", dropped=IMAGES, accounted=len(keys), duplicates=hmi.duplicates,
                       recover_s=recover_s)
