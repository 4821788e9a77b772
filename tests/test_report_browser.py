"""report.html in a real browser: headless Chromium renders it offline with no console error,
and the screenshot shows the tables and the plots (not a blank page).

Pillow is not a dependency: the screenshot is decoded by the small PNG reader below
(8-bit RGB or RGBA, not interlaced: what Chromium writes).
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
from report_factory import make_record

from pytest_scylla.aggregate import aggregate_experiment
from pytest_scylla.report.files import experiment_files

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BAR_BLUE = (0x4C, 0x78, 0xA8)  # the bars of plots.py
FRONTIER_RED = (0xE4, 0x57, 0x56)  # the Pareto frontier of plots.py


def _paeth_or_average(kind: int, line: list[int], up: list[int], bpp: int) -> list[int]:
    current = [0] * len(line)
    for i, value in enumerate(line):
        left = current[i - bpp] if i >= bpp else 0
        above = up[i]
        if kind == 3:
            current[i] = (value + ((left + above) >> 1)) & 255
            continue
        corner = up[i - bpp] if i >= bpp else 0
        guess = left + above - corner
        to_left, to_above, to_corner = abs(guess - left), abs(guess - above), abs(guess - corner)
        if to_left <= to_above and to_left <= to_corner:
            predicted = left
        elif to_above <= to_corner:
            predicted = above
        else:
            predicted = corner
        current[i] = (value + predicted) & 255
    return current


def decode_png(data: bytes) -> np.ndarray:
    """height x width x channels, for 8-bit RGB(A) non-interlaced PNGs."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, chunks, header = 8, [], b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, "unsupported PNG layout"
    bpp = 3 if colour == 2 else 4
    raw = np.frombuffer(zlib.decompress(b"".join(chunks)), dtype=np.uint8)
    rows = raw.reshape(height, 1 + width * bpp)
    image = np.zeros((height, width * bpp), dtype=np.uint8)
    previous = np.zeros(width * bpp, dtype=np.uint8)
    for y in range(height):
        kind, line = int(rows[y, 0]), rows[y, 1:]
        if kind == 0:
            current = line.copy()
        elif kind == 1:  # Sub: a running sum per channel
            sums = np.cumsum(line.reshape(width, bpp), axis=0, dtype=np.uint64) % 256
            current = sums.astype(np.uint8).ravel()
        elif kind == 2:  # Up
            current = line + previous
        else:
            decoded = _paeth_or_average(kind, line.tolist(), previous.tolist(), bpp)
            current = np.array(decoded, dtype=np.uint8)
        image[y] = current
        previous = current
    return image.reshape(height, width, bpp)


def test_png_reader_on_a_known_image() -> None:
    # A 2x4 RGB image, one row per filter (Sub, Paeth, Up, Average), filtered by hand.
    pixels = [
        [(255, 0, 0), (0, 255, 0)],
        [(0, 0, 255), (10, 20, 30)],
        [(1, 2, 3), (4, 5, 6)],
        [(7, 8, 9), (10, 11, 12)],
    ]
    filtered = [
        [1, 255, 0, 0, 1, 255, 0],
        [4, 1, 0, 255, 10, 21, 31],
        [2, 1, 2, 4, 250, 241, 232],
        [3, 7, 7, 8, 5, 5, 5],
    ]
    rows = b"".join(bytes(row) for row in filtered)
    ihdr = struct.pack(">IIBBBBB", 2, 4, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows))
    png += chunk(b"IEND", b"")
    decoded = decode_png(png)
    assert [[tuple(int(v) for v in decoded[y, x]) for x in range(2)] for y in range(4)] == pixels


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
def test_report_html_renders_in_headless_chromium(tmp_path: Path) -> None:
    records = [make_record("T0", "00", run, score) for run, score in enumerate((0.9, 0.5, 0.7), 1)]
    records += [make_record("T0", "01", run, score) for run, score in enumerate((0.2, 0.8), 1)]
    records += [
        make_record("T1", "00", run, score, cost=0.4)
        for run, score in enumerate((0.95, 1.0, 0.6), 1)
    ]
    records.append(make_record("T1", "00", 4, None))
    report = experiment_files(aggregate_experiment("exp", records, []), records)["report.html"]
    page = tmp_path / "report.html"
    page.write_text(report, encoding="utf-8")
    screenshot = tmp_path / "shot.png"
    done = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={screenshot}",
            "--window-size=1280,2000",
            "--enable-logging=stderr",
            "--v=0",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # The page has no script: any console message or uncaught error is a rendering fault.
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []
    image = decode_png(screenshot.read_bytes())
    assert image.shape[:2] == (2000, 1280)
    pixels = image[:, :, :3].reshape(-1, 3)
    colours = np.unique(pixels, axis=0)
    assert len(colours) > 100  # text antialiasing, tables and plots: far from blank
    present = {tuple(int(v) for v in colour) for colour in colours}
    assert BAR_BLUE in present and FRONTIER_RED in present  # the plots were drawn
    assert tuple(int(v) for v in image[5, 5, :3]) == (255, 255, 255)  # white page behind
