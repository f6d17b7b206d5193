"""Bad inputs to `batchsight` itself, `batchsight plan` and `batchsight report`: one line back each.

Every row (tests/bad_inputs.py) runs a real process and asserts the exit code (2: a usage
error), one line on stderr that says what is wrong and what to give instead, and no traceback.
None of them reaches S3: each is refused before a client is made.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.bad_inputs import BadInput, check

USAGE = 2
RATE = ["plan", "--rate", "300"]
REPORT = ["report", "--bucket", "final-bucket", "--output", "{tmp}/r.html"]
FORM = r"expected HH:MM-HH:MM\[,HH:MM-HH:MM\.\.\.\] in the order of the day, e.g. 06:00-14:00,14:00-22:00"

CASES = [
    BadInput("no command", [], USAGE, r"give a command: run, status, .*'batchsight --help' says what each does"),
    BadInput("an unknown command", ["train"], USAGE,
             r"unknown command 'train'; the commands are run, status, doctor, demo, report, plan, dataset, model, fit"),
    BadInput("an option before the command", ["--model", "m.npz"], USAGE,
             r"unknown option '--model'; give a command first"),
    BadInput("plan with hours and no minutes", [*RATE, "--shifts", "6-14"], USAGE,
             r"argument --shifts: shift '6-14': expected HH:MM-HH:MM on a 24-hour clock, e.g. 06:00-14:00"),
    BadInput("plan with shifts out of order", [*RATE, "--shifts", "14:00-22:00,06:00-14:00"], USAGE,
             r"shift '06:00-14:00' comes after '14:00-22:00' but starts earlier: " + FORM),
    BadInput("plan with overlapping shifts", [*RATE, "--shifts", "06:00-14:00,12:00-20:00"], USAGE,
             r"shift '12:00-20:00' overlaps '06:00-14:00': " + FORM),
    BadInput("plan with a night shift into the morning shift", [*RATE, "--shifts", "06:00-14:00,22:00-07:00"],
             USAGE, r"shift '22:00-07:00' runs into '06:00-14:00' the next day"),
    BadInput("plan with a shift of no length", [*RATE, "--shifts", "06:00-06:00"], USAGE,
             r"shift '06:00-06:00' ends when it starts; for a line that runs all day leave the shifts out"),
    BadInput("plan with an hour past 24", [*RATE, "--shifts", "06:00-25:00"], USAGE,
             r"shift '06:00-25:00': expected HH:MM-HH:MM on a 24-hour clock"),
    BadInput("plan with shifts and no rate", ["plan", "--shifts", "06:00-14:00"], USAGE,
             r"--shifts goes with --rate: give --rate IMAGES_PER_HOUR too"),
    BadInput("plan with start minutes high first", ["plan", "--start-minutes", "10", "5"], USAGE,
             r"argument --start-minutes: LOW 10 is above HIGH 5; give the range low first, e.g. "
             r"--start-minutes 5 10"),
    BadInput("plan with a negative rate", ["plan", "--rate", "-5"], USAGE,
             r"argument --rate: must be a finite number greater than 0, got '-5'"),
    BadInput("plan with an endless budget", ["plan", "--budget-minutes", "inf"], USAGE,
             r"argument --budget-minutes: must be a finite number greater than 0, got 'inf'"),
    BadInput("plan with no units", ["plan", "--units", "0"], USAGE,
             r"argument --units: must be a whole number from 1, got '0'"),
    BadInput("plan with an unknown backend", ["plan", "--backend", "rekognition"], USAGE,
             r"argument --backend: invalid choice: 'rekognition'"),
    BadInput("plan with a missing trace", ["plan", "--trace", "{tmp}/none.csv"], USAGE,
             r"argument --trace: no such file '.*none\.csv'; give a CSV of arrival times in seconds"),
    BadInput("plan with a rate and a trace", [*RATE, "--trace", "{tmp}/t.csv"], USAGE,
             r"give --rate or --trace, not both", {"t.csv": "arrival_seconds\n10\n20\n"}),
    BadInput("plan with a trace line that is not a number", ["plan", "--trace", "{tmp}/t.csv"], USAGE,
             r"t\.csv:3: 'soon' is not a number of seconds", {"t.csv": "arrival_seconds\n10\nsoon\n"}),
    BadInput("plan with a binary trace", ["plan", "--trace", "{tmp}/t.csv"], USAGE,
             r"t\.csv: not a CSV text file .*; expected arrival times in seconds", {"t.csv": b"\xff\xfe\x00\x01"}),
    BadInput("report on a bucket name S3 refuses", ["report", "--bucket", "Final_Bucket", "--batch", "b",
                                                    "--output", "r.html"], USAGE,
             r"argument --bucket: 'Final_Bucket' is not an S3 bucket name .*FinalBucketName"),
    BadInput("report on a batch and a time range", [*REPORT, "--batch", "b-1", "--since", "2026-11-23"], USAGE,
             r"give --batch or a time range \(--since/--until\), not both"),
    BadInput("report on neither a batch nor a time", REPORT, USAGE, r"give --batch ID, or --since ISO"),
    BadInput("report since a date that does not exist", [*REPORT, "--since", "2026-13-01"], USAGE,
             r"argument --since: '2026-13-01' is not an ISO 8601 time \(e\.g\. 2026-11-23T08:00Z\)"),
    BadInput("report until before since", [*REPORT, "--since", "2026-11-23", "--until", "2026-11-22"], USAGE,
             r"--until must be after --since"),
    BadInput("report with a negative image count", [*REPORT, "--batch", "b", "--max-images", "-1"], USAGE,
             r"argument --max-images: must be a whole number from 0, got '-1'"),
    BadInput("report with tiny thumbnails", [*REPORT, "--batch", "b", "--thumbnail-size", "8"], USAGE,
             r"argument --thumbnail-size: must be a whole number from 32 to 2048, got '8'"),
    BadInput("report with an endpoint that is not a URL", [*REPORT, "--batch", "b", "--endpoint-url", "localhost"],
             USAGE, r"argument --endpoint-url: 'localhost' is not an http\(s\) URL, e.g. http://127\.0\.0\.1:5000"),
    BadInput("report in a region that is not one", [*REPORT, "--batch", "b", "--region", "Europe"], USAGE,
             r"argument --region: 'Europe' is not an AWS region name, e.g. eu-west-1"),
    BadInput("report with a line id S3 keys cannot hold", [*REPORT, "--batch", "b", "--line", "a/b"], USAGE,
             r"argument --line: 'a/b': ids are letters, digits"),
    BadInput("report written onto a folder", ["report", "--bucket", "final-bucket", "--batch", "b", "--output",
                                              "{tmp}/out"], USAGE,
             r"--output .*out is a folder; give a file name such as", {"out/.keep": ""}),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bad_input(case: BadInput, tmp_path: Path) -> None:
    check(case, tmp_path)
