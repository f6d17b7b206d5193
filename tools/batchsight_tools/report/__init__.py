"""``batchsight report``: one self-contained HTML file for a batch or a time range.

Reads the result documents from the final bucket
(``results/{site}/{line}/{device}/{yyyy}/{mm}/{dd}/{image_id}.json``, the image beside each one,
and the segmentation mask when the model gave one) and writes counts, the anomaly rate per
line, and a grid of the anomalous images (highest confidence first) with the mask overlaid.
The file needs nothing else: thumbnails are embedded as data URIs, the style and the small
script are inline, and its Content-Security-Policy forbids loading anything from elsewhere,
so it can be mailed to a quality engineer who has no console access.

    python -m batchsight_tools.report --bucket B [--site S --line L --device D]
        (--batch ID | --since ISO [--until ISO]) --output report.html [--endpoint-url URL] [--region R]

A time range selects images by ``captured_at`` (when the camera took them), from ``--since``
included to ``--until`` excluded; times without a zone are UTC.

The modules, in the order the report is made:

- ``selection``: what the user asked for (filters, batch or time range) and which keys match;
- ``results``: reading the result documents and the images from the bucket, in parallel;
- ``images``: a thumbnail per anomalous image, the mask blended in;
- ``render``: the HTML page (``assets`` holds its inline style and script);
- ``write``: the whole run, written atomically; ``cli``: the command line.
"""
from __future__ import annotations

from batchsight_tools.report.cli import main
from batchsight_tools.report.selection import Selection
from batchsight_tools.report.write import write_report

__all__ = ["Selection", "main", "write_report"]
