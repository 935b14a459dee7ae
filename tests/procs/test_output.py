"""The output sink and log reader on their own: real files, every split of UTF-8."""

from __future__ import annotations

from pathlib import Path

from aiwgd.procs.output import OutputSink
from aiwgd.tasks.methods import read_log

TEXT = "naïve café — 日本語 😀 end\n"


def test_every_split_point_decodes_whole(tmp_path: Path) -> None:
    raw = TEXT.encode()
    for cut in range(len(raw) + 1):
        sink = OutputSink(tmp_path / f"{cut}.log")
        sink.feed(raw[:cut])
        sink.feed(raw[cut:])
        sink.close()
        assert sink.tail() == TEXT
        assert (tmp_path / f"{cut}.log").read_bytes() == raw


def test_tail_is_bounded_and_starts_on_a_character(tmp_path: Path) -> None:
    sink = OutputSink(None, tail_bytes=10)
    for byte in (TEXT * 3).encode():
        sink.feed(bytes([byte]))
    sink.close()
    tail = sink.tail()
    assert len(tail.encode()) <= 10 and "\ufffd" not in tail
    assert (TEXT * 3).endswith(tail)


def test_cap_marker_and_dropped_count(tmp_path: Path) -> None:
    path = tmp_path / "t.log"
    sink = OutputSink(path, cap=100)
    for _ in range(10):
        sink.feed(b"y" * 30)
    sink.close()
    data = path.read_bytes()
    assert data.startswith(b"y" * 50 + b"\n[aiwgd] log cap of 100 bytes")
    assert data.endswith(b"[aiwgd] 200 bytes of output cut; the last 50 bytes follow\n" + b"y" * 50)
    assert sink.tail().endswith("y" * 30) and sink.dropped == 200


def test_no_output_no_file(tmp_path: Path) -> None:
    sink = OutputSink(tmp_path / "none.log")
    sink.close()
    assert not (tmp_path / "none.log").exists()


def test_read_log_never_splits_a_character(tmp_path: Path) -> None:
    path = tmp_path / "r.log"
    raw = TEXT.encode()
    path.write_bytes(raw)
    for limit in range(1, 8):
        pos, out = 0, ""
        while pos < len(raw):
            text, nxt, size = read_log(path, pos, limit, final=False)
            assert size == len(raw) and "\ufffd" not in text
            if nxt == pos:  # a 4-byte character wider than the limit: read it whole
                text, nxt, _ = read_log(path, pos, 4, final=False)
            out, pos = out + text, nxt
        assert out == TEXT
    assert read_log(tmp_path / "missing.log", 0, 10, final=True) == ("", 0, 0)


def test_tail_bytes_zero_keeps_no_tail() -> None:
    # A slice [-0:] is the whole string: 0 must mean "no tail", not "all of it".
    sink = OutputSink(None, tail_bytes=0)
    for _ in range(100):
        sink.feed(b"x" * 1000 + "é".encode())
    sink.close()
    assert sink.tail() == ""
    one = OutputSink(None, tail_bytes=1)
    one.feed(b"abc")
    one.close()
    assert one.tail() == "c"
