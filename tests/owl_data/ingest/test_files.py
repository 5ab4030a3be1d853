"""Input files: pixel data that does not decode, the size limit (stat before read), regular files only."""

from __future__ import annotations

import io
import os
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from owl_data.ingest.files import DEFAULT_MAX_FILE_BYTES, FileProblem, open_regular, read_regular
from owl_data.ingest.images import ImageError, load_image
from tests.helpers import fails_after
from tests.owl_data.helpers import garbage_idat_png


@pytest.fixture
def no_hang():
    """Fail instead of blocking the suite when the test runs past 10 s."""
    with fails_after(10, "reading a file"):
        yield


def _pixels(h=48, w=64) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def test_garbage_png_pixels_with_a_valid_header_are_rejected(tmp_path):
    p = tmp_path / "garbage.png"
    p.write_bytes(garbage_idat_png(_pixels(), seed=1))
    with Image.open(p) as im:  # the header alone looks fine
        assert im.size == (64, 48)
    with pytest.raises(ImageError) as err:  # was: kept, decoded as black (the load error swallowed by getexif)
        load_image(p)
    assert err.value.reason == "unreadable_image"
    assert "broken data stream" in err.value.detail


def test_garbage_jpeg_scan_with_a_valid_header_is_rejected(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(_pixels()).save(buf, "JPEG", quality=90)
    jpg = buf.getvalue()
    sos = jpg.index(b"\xff\xda")
    start = sos + 2 + struct.unpack(">H", jpg[sos + 2:sos + 4])[0]  # first byte of the scan data
    p = tmp_path / "garbage.jpg"
    p.write_bytes(jpg[:start] + bytes(np.random.default_rng(0).integers(0, 256, len(jpg) - start, dtype=np.uint8)))
    with pytest.raises(ImageError) as err:
        load_image(p)
    assert err.value.reason == "unreadable_image"
    # a scan cut short keeps its reason too
    p.write_bytes(jpg[:start + 20])
    with pytest.raises(ImageError, match="truncated") as err:
        load_image(p)
    assert err.value.reason == "unreadable_image"


def test_good_png_still_stored_byte_for_byte(tmp_path):
    p = tmp_path / "good.png"
    p.write_bytes(_png(_pixels()))
    img = load_image(p)
    assert img.data == p.read_bytes() and not img.reencoded
    assert np.array_equal(img.pixels, _pixels())


def test_oversized_file_is_rejected_from_its_size_before_reading(tmp_path):
    p = tmp_path / "big.png"
    with open(p, "wb") as f:  # a small valid PNG followed by 50 MB of junk
        f.write(_png(_pixels()))
        f.write(os.urandom(1 << 20) * 50)
    size = p.stat().st_size
    assert size > 50 * 2**20
    tracemalloc.start()
    try:
        with pytest.raises(ImageError) as err:
            load_image(p, max_bytes=1 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert err.value.reason == "file_too_large"
    assert f"is {size} bytes, over the limit of {1 << 20}" in err.value.detail
    assert peak < 256 * 1024  # nothing of the file was read (was: all 50 MB)
    assert DEFAULT_MAX_FILE_BYTES == 256 * 2**20
    assert load_image(p).width == 64  # under the default limit the junk after IEND is ignored


def test_read_regular_never_reads_past_the_limit(tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(b"x" * 10)
    assert read_regular(p, max_bytes=10) == b"x" * 10
    with pytest.raises(FileProblem) as err:
        read_regular(p, max_bytes=9)
    assert err.value.reason == "file_too_large"


def test_fifo_is_refused_at_once(tmp_path, no_hang):
    fifo = tmp_path / "aachen_000000_000019_leftImg8bit.png"
    os.mkfifo(fifo)
    with pytest.raises(ImageError) as err:
        load_image(fifo)
    assert err.value.reason == "not_a_regular_file"
    assert err.value.detail == f"{fifo} is a FIFO, not a regular file"
    with pytest.raises(FileProblem) as err:
        open_regular(fifo, what="annotation")
    assert err.value.reason == "not_a_regular_file"


def test_folder_missing_and_unreadable(tmp_path):
    (tmp_path / "d.png").mkdir()
    cases = {tmp_path / "d.png": "not_a_regular_file", tmp_path / "none.png": "missing_image"}
    locked = tmp_path / "locked.png"
    locked.write_bytes(_png(_pixels()))
    locked.chmod(0)
    if not os.access(locked, os.R_OK):  # root reads it anyway
        cases[locked] = "unreadable_image"
    for path, reason in cases.items():
        with pytest.raises(ImageError) as err:
            load_image(path)
        assert err.value.reason == reason, path
    locked.chmod(0o600)


def test_symlink_to_a_regular_file_is_read(tmp_path):
    (tmp_path / "a.png").write_bytes(_png(_pixels()))
    (tmp_path / "b.png").symlink_to(tmp_path / "a.png")
    assert load_image(Path(tmp_path / "b.png")).width == 64


def test_read_regular_reads_a_file_that_grew_since_fstat_up_to_the_limit(tmp_path, monkeypatch):
    """fstat sizes the read (no buffer of the limit's size); growth after it is still read, and
    growth past the limit is refused."""
    import os as _os
    from owl_data.ingest import files

    p = tmp_path / "f.bin"
    p.write_bytes(bytes(range(200)))
    real = _os.fstat

    class Small:  # what fstat said before the file grew: 50 bytes
        def __init__(self, st):
            self.st_mode, self.st_size = st.st_mode, 50

    monkeypatch.setattr(files.os, "fstat", lambda fd: Small(real(fd)))
    assert read_regular(p) == bytes(range(200))
    assert read_regular(p, max_bytes=200) == bytes(range(200))
    with pytest.raises(FileProblem) as err:
        read_regular(p, max_bytes=120)
    assert err.value.reason == "file_too_large" and "grew" in str(err.value)
