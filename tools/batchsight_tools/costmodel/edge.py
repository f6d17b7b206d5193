"""The gateway's side of the simulation: when batches are cut, decided by the edge's own code.

This is the one module of the cloud package that imports the edge package (``batchsight``).
The rule "the cloud never imports edge code" is about what runs in Lambda; the cost model is
a planning and benchmark tool that runs on a workstation, and it must drive the gateway's
real ``BatchPolicy`` rather than a copy of it, so that a change to the batching rules
changes the figures. Keeping the import here, and only here, keeps that exception visible
and the Lambda handlers free of it.

The gateway runs as a process on the simulation's clock: it ticks, asks the policy whether
a batch is due, and while it uploads a batch it does nothing else, like the real loop.
"""
from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass

from batchsight.batcher import BatchPolicy
from batchsight.config import BatchSettings

SQS_BATCH = 10  # send_message_batch takes ten entries


@dataclass(frozen=True)
class EdgeBatching:
    """The ``batch.*`` settings of the component."""

    max_age_seconds: float = 900.0
    interval_seconds: float = 3600.0
    max_images: int = 500
    follow: bool = True


@dataclass(frozen=True)
class Uplink:
    """How long a submission takes: upload every image, enqueue, start the execution."""

    upload_seconds_per_image: float = 0.2  # a 200 KB image over a shared ~8 Mbit/s uplink
    upload_concurrency: int = 4  # CloudLink's upload pool
    call_seconds: float = 0.05  # one SQS or Step Functions call
    tick_seconds: float = 1.0  # the runtime ticks every 0.2 s; a second is fine-grained enough

    def submit_seconds(self, images: int) -> float:
        uploads = math.ceil(images / self.upload_concurrency) * self.upload_seconds_per_image
        return uploads + math.ceil(images / SQS_BATCH) * self.call_seconds


DEFAULT_UPLINK = Uplink()  # a default argument's value, made once (Uplink is frozen)


@dataclass(frozen=True)
class Submission:
    cut_at: float
    trigger: str
    images: tuple[int, ...]
    visible_at: float  # every message of the batch is in the queue
    execution_at: float  # StartExecution, named by the batch id


Submit = Callable[[Submission], str]  # the submission's execution name, which is its batch id
ResultAt = Callable[[int], "float | None"]


def gateway(clock: Callable[[], float], arrivals: Sequence[float], batching: EdgeBatching,
            uplink: Uplink, submit: Submit, *, result_at: ResultAt | None = None,
            results_poll_seconds: float = 10.0, ids: Sequence[int] | None = None,
            announced: Sequence[tuple[float, str]] | None = None) -> Generator[float, None, None]:
    """The component's batching loop as a process: yields the seconds it waits.

    With ``result_at`` (when an image's result was stored, or None) the gateway's result pull
    tells the policy when the first result of a batch appears (``BatchPolicy.model_hosted``),
    which cuts a "follow" batch, as the component does with ``batch.follow``. ``announced`` (when
    each of the pipeline's hosting notices reaches the gateways' queues, and the execution that
    sent it, appended as they happen) does the same site-wide: a notice that finds images waiting
    cuts a follow batch, once per execution (a gateway's own batch is its execution's name); one
    that finds none is gone, as the component's follow is. ``ids``: the site's image numbers of this
    gateway's ``arrivals`` (a site splits one trace over its gateways); the submissions carry them.
    """
    settings = BatchSettings(interval_seconds=float(batching.interval_seconds),
                             max_images=int(batching.max_images),
                             max_age_seconds=float(batching.max_age_seconds), follow=batching.follow)
    policy = BatchPolicy(settings, last_cut=clock())
    waiting: deque[int] = deque()
    unfollowed: list[tuple[Submission, str]] = []  # with its batch id, until its first result is seen
    n, nxt, next_poll, notices = len(arrivals), 0, 0.0, 0
    while nxt < n or waiting:
        now = clock()
        if announced is not None:  # pushed while the loop slept or worked: heard now, if anything waits
            while notices < len(announced) and announced[notices][0] <= now:
                at, execution = announced[notices]
                if waiting or (nxt < n and arrivals[nxt] <= at):
                    policy.model_hosted(execution)
                notices += 1
        while nxt < n and arrivals[nxt] <= now:
            waiting.append(nxt)
            nxt += 1
        trigger = policy.due(waiting=len(waiting), oldest_seen=arrivals[waiting[0]] if waiting else None,
                             now=now)
        if trigger is None and result_at is not None and now >= next_poll:
            next_poll = now + results_poll_seconds
            seen = [(name, t) for s, name in unfollowed if (t := result_at(s.images[0])) is not None and t <= now]
            unfollowed = [(s, name) for s, name in unfollowed if all(name != x for x, _ in seen)]
            for name, stored_at in seen:
                if now - stored_at <= 2 * results_poll_seconds:  # the pull finds it while fresh
                    policy.model_hosted(name)
            trigger = policy.due(waiting=len(waiting), oldest_seen=arrivals[waiting[0]] if waiting else None,
                                 now=now)
        if trigger:
            local = (waiting.popleft() for _ in range(min(len(waiting), settings.max_images)))
            batch = tuple(local) if ids is None else tuple(ids[i] for i in local)
            visible = now + uplink.submit_seconds(len(batch))
            submission = Submission(now, trigger, batch, visible, visible + uplink.call_seconds)
            name = submit(submission)
            policy.cut(name, trigger, now)
            if trigger != "follow":
                unfollowed.append((submission, name))
            yield submission.execution_at - now  # the loop is busy while it submits
        elif waiting:
            yield uplink.tick_seconds
        elif nxt < n:
            yield max(uplink.tick_seconds, arrivals[nxt] - now)


def submissions(arrivals: Sequence[float], batching: EdgeBatching,
                uplink: Uplink = DEFAULT_UPLINK) -> list[Submission]:
    """The gateway's cuts on its own, with no cloud attached."""
    now = [0.0]
    result: list[Submission] = []

    def submit(submission: Submission) -> str:
        result.append(submission)
        return f"batch-{len(result)}"

    for wait in gateway(lambda: now[0], arrivals, batching, uplink, submit):
        now[0] += wait
    return result
