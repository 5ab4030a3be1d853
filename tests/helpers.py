"""Assertions and guards shared by the tests of both packages."""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path

# COCO 2014/2017 instance categories, in id order (instances_val2017.json "categories").
COCO_80 = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)


def one_line_error(res) -> str:
    """The output of a CLI result that must be exactly one ``error:`` line with exit status 2 (no traceback)."""
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and res.output.count("error:") == 1, res.output
    return res.output


def snapshot(p: Path) -> dict[str, bytes | None]:
    """Every path under ``p`` (relative) -> its bytes, or None for a folder: compare before/after a refusal."""
    return {str(x.relative_to(p)): (x.read_bytes() if x.is_file() else None) for x in sorted(p.rglob("*"))}


@contextlib.contextmanager
def fails_after(seconds: int, what: str):
    """Raise TimeoutError inside the block when it runs past ``seconds`` (SIGALRM), so a test of a
    blocking input (a FIFO) fails instead of hanging the suite."""
    def alarm(*_):
        raise TimeoutError(f"{what} blocked for {seconds} s")
    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
