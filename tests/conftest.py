"""Shared fixtures: one local cloud (moto server with the real stack) and real MQTT brokers.

moto keeps its state per process, so the whole session shares one LocalCloud; each test
that uses it starts from clean queues, buckets and model-hosting state.

Two reporting hooks: ``--reliability-table FILE`` writes every ``report_reliability`` call of
the run as a markdown table (docs/reliability.md is refreshed that way, never by typing), and
the tests skipped because ``../shared`` is missing are reported as one line, not one each.
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests import support
from tests.support import CloudFixture

if TYPE_CHECKING:
    from batchsight_tools.localcloud.hmi import Subscriber


TOOL_HEAVY = ("tests/cloud/test_sam_build.py", "tests/cloud/test_templates.py", "tests/test_lint.py",
              "tests/tools/test_command_help.py::test_cost_prints", "tests/tools/test_cost_site.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest tests first: the unit tests that shell out to whole tools (sam build, cfn-lint,
    checkov, mypy; on a fresh machine the first of them installs the template tools into .tools/)
    or run the cost model on whole days (the site table; bench/cost.py's run, now on a morning,
    was a minute on the whole day), then those that run real processes (the ``integration``
    marker, tests/reliability). On two workers a long test handed out last holds the end of the
    run on one core while the other idles, and the suite is meant to stay well inside 15 minutes."""
    def rank(item: pytest.Item) -> int:
        if item.nodeid.startswith(TOOL_HEAVY):
            return 0
        if item.get_closest_marker("integration") is not None or item.nodeid.startswith("tests/reliability/"):
            return 1
        return 2

    items.sort(key=rank)


@pytest.fixture(scope="session")
def fitted_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from batchsight_detector import fit
    from batchsight_tools.synth import generate_training_set

    path = tmp_path_factory.mktemp("model") / "detector.npz"
    fit(generate_training_set(30, size=128, seed=3), working_size=64).save(path)
    return path


@pytest.fixture(scope="session")
def local_cloud_session(tmp_path_factory: pytest.TempPathFactory, fitted_model: Path) -> Iterator[CloudFixture]:
    from batchsight_tools.localcloud.stack import LocalCloud

    state_dir = tmp_path_factory.mktemp("hosting")
    cloud = LocalCloud(parameters={"PollSeconds": "1", "DrainWorkers": "2", "DetectTps": "50",
                                   "ModelBackend": "local"},
                       function_environment={"LOCAL_MODEL_PATH": str(fitted_model),
                                             "LOCAL_MODEL_STATE_DIR": str(state_dir),
                                             "LOCAL_MODEL_STARTUP_SECONDS": "1",
                                             "POWERTOOLS_LOG_LEVEL": "WARNING"})
    outputs = cloud.start()
    yield CloudFixture(cloud, outputs, fitted_model, state_dir)
    cloud.stop()


@pytest.fixture
def local_cloud(local_cloud_session: CloudFixture) -> Iterator[CloudFixture]:
    local_cloud_session.reset()
    yield local_cloud_session
    local_cloud_session.wait_for_executions()  # results reach MQTT before the last stop runs
    assert local_cloud_session.hosting_state() == "STOPPED", "a test left the model hosted"


@pytest.fixture
def mqtt_broker() -> Iterator[Any]:
    from batchsight_tools.localcloud.broker import MqttBroker

    with MqttBroker() as broker:
        yield broker


@pytest.fixture
def hmi(mqtt_broker: Any) -> Iterator[Subscriber]:
    """An HMI on the broker, listening to what the edge component publishes for inspection."""
    from tests.edge_process import listen

    subscriber = listen(mqtt_broker.port)
    yield subscriber
    subscriber.stop()


# --- reporting hooks ---------------------------------------------------------------------------

_OUTCOMES: dict[str, str] = {}  # node id -> passed / failed / skipped, for the reliability table
_SHARED_REASON = re.compile(r"\.\./shared\b|[/\\]shared[/\\]|\bno shared\b")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--reliability-table", metavar="FILE", type=Path, default=None,
                     help="write the figures of every report_reliability call of this run as a markdown table "
                          "headed by the command and the date (between the reliability-table markers when "
                          "FILE has them), e.g. docs/reliability.md")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    ends_it = report.failed or report.when == "call" or (report.when == "setup" and report.skipped)
    if ends_it and _OUTCOMES.get(report.nodeid) != "failed":  # a failure in any phase stands
        _OUTCOMES[report.nodeid] = report.outcome


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = session.config.getoption("--reliability-table")
    if target is None:
        return
    args = list(session.config.invocation_params.args)
    table = support.reliability_table(support.RELIABILITY_FIGURES, args=args, day=dt.date.today().isoformat(),
                                      outcomes=_OUTCOMES)
    support.write_reliability_table(target, table)


def skipped_for_shared(report: pytest.TestReport | pytest.CollectReport) -> bool:
    """Whether a skip's reason is the missing ``../shared`` folder (images, schemas, API models)."""
    longrepr = report.longrepr
    reason = str(longrepr[2]) if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return bool(_SHARED_REASON.search(reason)) or str(support.SHARED) in reason


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter: Any) -> Generator[None]:
    """Without ``../shared``, its skips make one line of the summary instead of one entry each.

    Outermost wrapper (tryfirst): the skips are taken out of the list ``-ra`` prints from while
    pytest writes its summary, put back for the final count, and summed up in one line.
    """
    skipped = terminalreporter.stats.get("skipped", [])
    folded = [] if support.SHARED.is_dir() else [r for r in skipped if skipped_for_shared(r)]
    if folded:
        terminalreporter.stats["skipped"] = [r for r in skipped if not any(r is f for f in folded)]
    try:
        return (yield)
    finally:
        if folded:
            terminalreporter.stats["skipped"] = skipped
            what = "labelled images, Greengrass schemas, the archived Lookout for Vision API model"
            where = (f"../shared ({what}) not found next to the repository"
                     if support.REPO.parent / "shared" == support.SHARED
                     else f"{support.SHARED} (BATCHSIGHT_SHARED: {what}) not found")
            terminalreporter.write_line(f"{len(folded)} test{'s' if len(folded) != 1 else ''} skipped: {where}",
                                        yellow=True)
