"""What the AWS sample's mechanism is billed for: an SQS event source mapping and its state machine.

The sample has no gateway batching: each image's upload fires an S3 event notification into SQS,
and while the hourly state machine keeps the model hosted, a Lambda event source mapping (batch
size 1) invokes a function per image that calls the model, stores the result and moves the image.
The mapping long-polls the queue with five pollers (20-second receives, most of them empty while
no image waits) for as long as it is enabled. Durations and sizes are estimates.
"""
from __future__ import annotations

import batchsight_tools.costmodel.meters as meters
from batchsight_tools.costmodel.backends import BackendPreset
from batchsight_tools.costmodel.images import Images
from batchsight_tools.costmodel.stack_shape import StackShape
from batchsight_tools.costmodel.usage import Usage

POLLERS = 5
POLL_WAIT_SECONDS = 20.0
FUNCTION_MEMORY_MB = 512  # the sample's image function (estimate)
IMAGE_IO_SECONDS = 0.1  # GET, PUT, COPY and DELETE around the model call
TASK_SECONDS = 0.3  # one of the sample's state machine's Lambda tasks
LOG_BYTES = 600


def images_judged(usage: Usage, count: int, *, detect_seconds: float, backend: BackendPreset,
                  images: Images, shape: StackShape) -> None:
    """Per image: the mapping's receive and delete, one invocation, the S3 calls, the model's data."""
    meters.sqs_requests(usage, "ReceiveMessage by the event source mapping", count)
    meters.sqs_requests(usage, "DeleteMessageBatch by the event source mapping", count)
    meters.lambda_invocations(usage, "sample image function", memory_mb=FUNCTION_MEMORY_MB,
                              seconds=detect_seconds + IMAGE_IO_SECONDS, arch=shape.arch, count=count)
    meters.log_ingestion(usage, "of the functions", LOG_BYTES * count)
    meters.s3_requests(usage, "GET", "of the image by the sample's function", count)
    meters.s3_requests(usage, "PUT", "of the result", count)
    meters.s3_requests(usage, "COPY", "of the image to the final bucket", count)
    meters.s3_requests(usage, "DELETE", "of the image from the source bucket", count)
    if backend.data_processed:
        meters.sagemaker_data(usage, "by the endpoint", bytes_in=count * images.image_bytes,
                              bytes_out=count * images.result_bytes)


def mapping_enabled(usage: Usage, seconds: float) -> None:
    """The pollers' long polls while the mapping is enabled (those that returned an image are
    counted per image)."""
    meters.sqs_requests(usage, "empty receives by the event source mapping", POLLERS * seconds / POLL_WAIT_SECONDS)


def state_machine(usage: Usage, *, transitions: int, tasks: int, shape: StackShape) -> None:
    meters.state_transitions(usage, "state transitions", transitions)
    meters.lambda_invocations(usage, "sample state machine tasks", memory_mb=FUNCTION_MEMORY_MB,
                              seconds=TASK_SECONDS, arch=shape.arch, count=tasks)
    meters.log_ingestion(usage, "of the functions", LOG_BYTES * tasks)
