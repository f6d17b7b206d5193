"""The session's local cloud outlives a unit test's ``mock_aws`` on the same worker.

moto keeps its state per process, and ``mock_aws`` resets all of it when it starts, the state of
the moto server the local cloud runs on included. With ``--dist worksteal`` a worker may take an
integration test after the unit tests it ran, so the next test's reset finds the stack gone and
makes it again, under the same names.
"""
from __future__ import annotations

import pytest
from moto import mock_aws

from tests.support import CloudFixture

pytestmark = pytest.mark.integration


def test_a_mock_aws_reset_of_moto_is_mended_by_the_next_tests_reset(local_cloud_session: CloudFixture) -> None:
    sqs = local_cloud_session.client("sqs")
    with mock_aws():
        pass  # what a unit test using mock_aws does to this process's moto state
    assert "QueueUrls" not in sqs.list_queues(QueueNamePrefix="batchsight-"), "the stack was wiped"
    local_cloud_session.reset()
    assert local_cloud_session.outputs.queue_url in sqs.list_queues(QueueNamePrefix="batchsight-")["QueueUrls"]
    execution = local_cloud_session.run_execution("after-a-reset", {"v": 1, "trigger": "manual"})
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
