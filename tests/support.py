"""Test helpers shared by the suites: paths, schemas, polling, and the local cloud wrapper."""
from __future__ import annotations

import json
import os
import shlex
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
import contextlib

REPO = Path(__file__).resolve().parents[1]
# The labelled images, the official Greengrass schemas and the archived AWS API models live next to
# the repository, not in it; BATCHSIGHT_SHARED names another place (or a missing one, to see the skips).
SHARED = Path(os.environ.get("BATCHSIGHT_SHARED") or REPO.parent / "shared")
SCHEMAS = REPO / "contracts" / "schemas"


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A moto server in this process, on a free port; its endpoint URL."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def load_schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / f"{name}.schema.json").read_text())


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, *, every: float = 0.1,
             tick: Callable[[], Any] | None = None) -> float:
    """Poll until ``predicate()`` is true and return the seconds it took; fail after ``timeout``
    naming ``what``. ``tick`` runs before each poll (to drive a component under test)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if tick is not None:
            tick()
        if predicate():
            return time.monotonic() - started
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@dataclass
class CloudFixture:
    cloud: Any
    outputs: Any
    model_path: Path
    state_dir: Path

    def client(self, service: str) -> Any:
        return self.cloud.client(service)

    def reset(self) -> None:
        """Empty queues and buckets and forget model hosting, between tests; make the stack again
        when it is gone (a unit test's ``mock_aws`` on this worker reset moto's state in the process)."""
        sqs = self.client("sqs")
        if not sqs.list_queues(QueueNamePrefix=self.outputs.queue_url.rsplit("/", 1)[1]).get("QueueUrls"):
            made = self.cloud.rebuild()
            assert (made.queue_url, made.state_machine_arn, made.final_bucket) == \
                (self.outputs.queue_url, self.outputs.state_machine_arn, self.outputs.final_bucket)
        for url in (self.outputs.queue_url, self.outputs.dead_letter_queue_url):
            # PurgeQueue is limited to once a minute: receive and delete instead.
            while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                                  WaitTimeSeconds=0).get("Messages", []):
                sqs.delete_message_batch(QueueUrl=url, Entries=[
                    {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)])
        # the gateways' own result queues: a gateway creates its queue again at start, and must not
        # hear an earlier test's results or model-hosting notices
        for url in sqs.list_queues(QueueNamePrefix=f"{self.outputs.result_queue_prefix}-").get("QueueUrls", []):
            sqs.delete_queue(QueueUrl=url)
        from batchsight_pipeline import result_push, routes

        result_push.forget_queue_urls()  # the in-process drain must not remember them, found or missing
        self._forget_routes(sqs)
        routes.forget()
        s3 = self.client("s3")
        for bucket in (self.outputs.source_bucket, self.outputs.final_bucket):
            for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
                for item in page.get("Versions", []) + page.get("DeleteMarkers", []):
                    s3.delete_object(Bucket=bucket, Key=item["Key"], VersionId=item["VersionId"])
        shutil.rmtree(self.state_dir, ignore_errors=True)
        table = self.outputs.extra["LockTableName"]
        dynamodb = self.client("dynamodb")
        for item in dynamodb.scan(TableName=table, ProjectionExpression="lock_id")["Items"]:  # every route's lock
            dynamodb.delete_item(TableName=table, Key={"lock_id": item["lock_id"]})

    def _forget_routes(self, sqs: Any) -> None:
        """The model routes a test added: their parameters and their queues."""
        ssm, path = self.client("ssm"), self.outputs.extra["ModelRoutesPath"]
        for page in ssm.get_paginator("get_parameters_by_path").paginate(Path=path):
            for item in page.get("Parameters", []):
                ssm.delete_parameter(Name=item["Name"])
        stack = path.split("/")[2]
        for url in sqs.list_queues(QueueNamePrefix=f"{stack}-work-").get("QueueUrls", []):
            sqs.delete_queue(QueueUrl=url)
        cloudwatch = self.client("cloudwatch")
        alarms = cloudwatch.describe_alarms(AlarmNamePrefix=f"{stack}-backlog-too-old-")["MetricAlarms"]
        if alarms:
            cloudwatch.delete_alarms(AlarmNames=[alarm["AlarmName"] for alarm in alarms])

    def lock_owner(self) -> str | None:
        item = self.client("dynamodb").get_item(TableName=self.outputs.extra["LockTableName"],
                                                Key={"lock_id": {"S": "model"}}).get("Item")
        return item["owner"]["S"] if item else None

    def hosting_state(self) -> str:
        from batchsight_tools.localcloud.local_backend import LocalBackend

        backend = LocalBackend(model_path=self.model_path, state_dir=self.state_dir,
                               startup_seconds=0, start_timeout_seconds=1)
        return backend._describe()[0]

    def hosted_intervals(self) -> list[dict[str, Any]]:
        ledger = self.state_dir / "ledger.jsonl"
        return [json.loads(x) for x in ledger.read_text().splitlines()] if ledger.exists() else []

    def start_execution(self, name: str, payload: dict[str, Any] | None = None) -> str:
        return self.client("stepfunctions").start_execution(
            stateMachineArn=self.outputs.state_machine_arn, name=name,
            input=json.dumps(payload or {"v": 1, "trigger": "manual"}))["executionArn"]

    def run_execution(self, name: str, payload: dict[str, Any] | None = None,
                      timeout: float = 90.0) -> dict[str, Any]:
        return self.wait_execution(self.start_execution(name, payload), timeout)

    def wait_for_executions(self, timeout: float = 180.0) -> None:
        """Until no execution of the state machine is RUNNING (bounded)."""
        sfn = self.client("stepfunctions")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            running = sfn.list_executions(stateMachineArn=self.outputs.state_machine_arn,
                                          statusFilter="RUNNING")["executions"]
            if not running:
                return
            time.sleep(0.3)
        raise AssertionError(f"executions still running after {timeout} s: {[e['name'] for e in running]}")

    def wait_execution(self, arn: str, timeout: float = 90.0) -> dict[str, Any]:
        sfn = self.client("stepfunctions")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            described = sfn.describe_execution(executionArn=arn)
            if described["status"] != "RUNNING":
                return described
            time.sleep(0.3)
        raise AssertionError(f"execution {arn} still running after {timeout} s")


class TcpGate:
    """A real TCP forwarder to a local port that a test can cut and restore, like a WAN link."""

    def __init__(self, target_port: int) -> None:
        import socket
        import threading

        self.target_port = target_port
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self.open = True
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._connections += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: Any, sink: Any) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.close()

    def cut(self) -> None:
        """Refuse new connections and drop the open ones."""
        self.open = False
        with self._lock:
            for connection in self._connections:
                with contextlib.suppress(OSError):
                    connection.close()
            self._connections.clear()

    def restore(self) -> None:
        self.open = True

    def close(self) -> None:
        self.cut()
        self._listener.close()


@dataclass(frozen=True)
class ReliabilityFigure:
    """One ``report_reliability`` call: a scenario's figures and the test that measured them."""

    scenario: str
    test: str
    dropped: int
    accounted: int
    duplicates: int
    recover_s: float | None


# Every report_reliability call of this process, in order: `pytest --reliability-table FILE` writes them.
RELIABILITY_FIGURES: list[ReliabilityFigure] = []
TABLE_START, TABLE_END = "<!-- reliability-table: start -->", "<!-- reliability-table: end -->"


def report_reliability(scenario: str, *, dropped: int, accounted: int, duplicates: int,
                       recover_s: float | None) -> str:
    """Print one machine-readable line of a reliability scenario's figures (read with ``pytest -s``).

    ``dropped``: images the camera dropped; ``accounted``: of those, how many ended with exactly
    one result (or in quarantine with a reason); ``duplicates``: extra result documents or MQTT
    messages; ``recover_s``: from the fault's end to the last image's result (None: no fault).
    The call is also kept, with the running test's node id, for ``--reliability-table FILE``
    (tests/conftest.py), which writes docs/reliability.md's table: figures are never typed by hand.
    """
    test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]  # "path::name[id] (call)"
    RELIABILITY_FIGURES.append(ReliabilityFigure(scenario, test, dropped, accounted, duplicates, recover_s))
    recover = "n/a" if recover_s is None else f"{recover_s:.1f}"
    line = (f"RELIABILITY scenario={scenario} dropped={dropped} accounted={accounted} "
            f"duplicates={duplicates} recover_s={recover}")
    print(f"\n{line}", flush=True)
    return line


def reliability_table(figures: list[ReliabilityFigure], *, args: list[str], day: str,
                      outcomes: dict[str, str]) -> str:
    """The figures as a markdown table, headed by the command that produced them and its date.

    ``outcomes`` maps a test's node id to its outcome (passed, failed), so a figure from a test
    that then failed says so. The figures are the ones the tests printed, unedited.
    """
    tests = list(dict.fromkeys(f.test for f in figures))
    failed = [t for t in tests if outcomes.get(t) != "passed"]
    verdict = "every one passed" if not failed else f"{len(failed)} did not pass"
    counts = {kind: sum(1 for o in outcomes.values() if o == kind) for kind in ("passed", "failed", "skipped")}
    run = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)
    lines = [f"Written by `pytest {shlex.join(args)}` on {day}, on {os.cpu_count()} cores: "
             f"{len(figures)} scenarios from {len(tests)} tests, {verdict} (the whole run: {run or 'no tests'}).", "",
             "| scenario | test | dropped | accounted for | duplicates | recover (s) | outcome |",
             "|---|---|---|---|---|---|---|"]
    for f in figures:
        recover = "n/a" if f.recover_s is None else f"{f.recover_s:.1f}"
        test = f.test.removeprefix("tests/").replace("|", "\\|")
        lines.append(f"| {f.scenario} | `{test}` | {f.dropped} | {f.accounted} | {f.duplicates} | {recover} "
                     f"| {outcomes.get(f.test, 'unknown')} |")
    return "\n".join(lines) + "\n"


def write_reliability_table(path: Path, table: str) -> None:
    """Write ``table`` to ``path``: between its TABLE_START and TABLE_END lines when it has them
    (a page that explains the figures around them), else as the whole file."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if TABLE_START in text and TABLE_END in text.split(TABLE_START, 1)[1]:
        before, rest = text.split(TABLE_START, 1)
        after = rest.split(TABLE_END, 1)[1]
        text = f"{before}{TABLE_START}\n{table}{TABLE_END}{after}"
    else:
        text = table
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
