"""batchsight cloud side: Lambda handlers, model backends, and the local emulation of the stack.

Nothing here imports the edge package; the two halves meet only in data contracts
(S3 key layout, SQS message, execution input, result document).
"""
