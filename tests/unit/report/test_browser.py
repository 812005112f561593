"""The report in a real headless Chromium: the screenshot is a rendered page, not a blank one."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib
from collections import Counter

import pytest

from okrsync.report import render_report

from .helpers import build_store

WIDTH, HEIGHT = 1280, 1800
# status colours that the top of the report shows (summary chips, objective bars and badges)
STATUS_RGB = {"achieved": (0x0F, 0x76, 0x6E), "on_track": (0x16, 0xA3, 0x4A), "at_risk": (0xD9, 0x77, 0x06),
              "off_track": (0xDC, 0x26, 0x26)}
HEADER_RGB = (0x0F, 0x17, 0x2A)


def chromium() -> str | None:
    for name in (os.environ.get("OKRSYNC_CHROMIUM"), "chromium", "chromium-browser", "google-chrome",
                 "google-chrome-stable"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """8-bit RGB/RGBA, non-interlaced PNG -> (width, height, rows of RGB bytes). Pure Python."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
    assert header is not None
    width, height, depth, ctype, _, _, interlace = header
    assert depth == 8 and ctype in (2, 6) and interlace == 0, f"unsupported PNG {header}"
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    prev = bytearray(stride)
    rows: list[bytes] = []
    for r in range(height):
        start = r * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        if kind == 1:  # Sub
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif kind == 2:  # Up: bytewise add without carries, on big integers
            a, b = int.from_bytes(line, "big"), int.from_bytes(prev, "big")
            low, high = int.from_bytes(b"\x7f" * stride, "big"), int.from_bytes(b"\x80" * stride, "big")
            line = bytearray((((a & low) + (b & low)) ^ ((a ^ b) & high)).to_bytes(stride, "big"))
        elif kind == 3:  # Average
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
        elif kind == 4:  # Paeth
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                c = prev[i - bpp] if i >= bpp else 0
                b = prev[i]
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        prev = line
        rows.append(bytes(line) if bpp == 3 else b"".join(bytes(line[i:i + 3]) for i in range(0, stride, 4)))
    return width, height, rows


def near(rgb: bytes | tuple, want: tuple[int, int, int], tol: int = 8) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(rgb, want))


@pytest.mark.browser
def test_report_renders_in_headless_chromium(tmp_path):
    binary = chromium()
    if binary is None:
        pytest.skip("no chromium binary found (apt-get install -y chromium)")
    comp, store = build_store(tmp_path / "okrsync.db")
    report = tmp_path / "report.html"
    report.write_text(render_report(comp, store), encoding="utf-8")
    store.close()
    shot = tmp_path / "shot.png"
    cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
           f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}", report.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90, cwd=tmp_path)
    assert shot.exists(), f"no screenshot (exit {proc.returncode}): {proc.stderr[-2000:]}"
    data = shot.read_bytes()
    assert len(data) > 50_000, f"suspiciously small screenshot: {len(data)} bytes"

    width, height, rows = decode_png(data)
    assert (width, height) == (WIDTH, HEIGHT)
    colours: Counter[bytes] = Counter()
    for row in rows[::2]:
        for i in range(0, len(row), 6):
            colours[row[i:i + 3]] += 1
    total = sum(colours.values())
    assert len(colours) > 100, f"only {len(colours)} colours: a blank page?"
    assert colours.most_common(1)[0][1] / total < 0.8, "one colour covers most of the page"
    for status, rgb in STATUS_RGB.items():
        hits = sum(n for c, n in colours.items() if near(c, rgb))
        assert hits >= 4, f"{status} colour #{bytes(rgb).hex()} hardly drawn ({hits} samples)"
    # the dark header band is painted (the stylesheet applied)
    assert near(rows[20][20 * 3:21 * 3], HEADER_RGB)
