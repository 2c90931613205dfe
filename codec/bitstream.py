"""The ``.svq`` container: header, constant-size frames, CRC-32.

One layout table (:data:`HEADER_FIELDS`) drives packing, parsing and the
format documentation (``python -m codec.bitstream`` prints the Markdown that
``docs/FORMAT.md`` holds; a test checks they agree). Any change of a number
in this table is a new :data:`FORMAT_VERSION`.

File layout (all integers little-endian)::

    magic (4 bytes) | version (u8) | header_length (u16) | header fields
    | frame 0 | frame 1 | ... | frame N-1 | CRC-32 (u32) over all preceding bytes

Every frame has exactly ``frame_bytes`` bytes.
"""

from __future__ import annotations

import io
import struct
import tempfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from typing import BinaryIO

from codec.errors import BitstreamError

__all__ = [
    "MAGIC",
    "FORMAT_VERSION",
    "HEADER_FIELDS",
    "Header",
    "pack_file",
    "unpack_file",
    "read_header",
    "HEADER_BYTES",
    "ContainerReader",
    "ContainerWriter",
    "format_table_markdown",
]

MAGIC = b"SVQ\x1a"
FORMAT_VERSION = 2
_PREFIX = struct.Struct("<4sBH")  # magic, version, header_length

# (name, struct code, description) -- the single source of the header layout
HEADER_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("sample_rate", "I", "output sample rate in Hz (16000)"),
    ("frame_length", "H", "samples per frame (320 = 20 ms)"),
    ("bitrate_bps", "I", "nominal bitrate in bit/s (8000, 9600, 13200, 16400, 24400, 32000)"),
    ("frame_bytes", "H", "bytes per frame B = bitrate * 20 ms / 8"),
    ("frame_count", "I", "number of frames N"),
    ("sample_count", "Q", "samples of the decoded signal (the 16 kHz input length)"),
    ("residual_coder", "B", "residual coder id (1 = TCX: MDCT + envelope-driven range coder)"),
    ("envelope_id", "24s", "envelope quantizer name, ASCII, NUL-padded (e.g. 'avq-4x6')"),
    ("codebook_hash", "16s", "first 16 bytes of the codebook's SHA-256 content hash"),
)
_HEADER = struct.Struct("<" + "".join(code for _, code, _ in HEADER_FIELDS))
_CRC = struct.Struct("<I")
HEADER_BYTES = _PREFIX.size + _HEADER.size
"""Bytes before the first frame (prefix and header fields)."""
MAX_FRAME_BYTES = 1024


@dataclass(frozen=True)
class Header:
    """Header fields of a ``.svq`` file (see :data:`HEADER_FIELDS`)."""

    sample_rate: int
    frame_length: int
    bitrate_bps: int
    frame_bytes: int
    frame_count: int
    sample_count: int
    residual_coder: int
    envelope_id: str
    codebook_hash: bytes

    def pack(self) -> bytes:
        values = []
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "envelope_id":
                text = str(v)
                if not (text.isascii() and _valid_envelope_id(text.encode("ascii"))):
                    raise BitstreamError(f"envelope id {v!r} is not a printable ASCII name")
                raw = text.encode("ascii")
                if len(raw) > 24:
                    raise BitstreamError(f"envelope id {v!r} longer than 24 bytes")
                v = raw
            values.append(v)
        try:
            return _HEADER.pack(*values)
        except struct.error as exc:
            raise BitstreamError(f"header field out of range: {exc}") from exc


def _parse_header(raw: bytes) -> Header:
    values = list(_HEADER.unpack(raw))
    names = [name for name, _, _ in HEADER_FIELDS]
    d = dict(zip(names, values, strict=True))
    name = d["envelope_id"].rstrip(b"\0")
    if not _valid_envelope_id(name):
        raise BitstreamError("corrupt header: envelope id is not a printable name")
    d["envelope_id"] = name.decode("ascii")
    return Header(**d)


def _valid_envelope_id(raw: bytes) -> bool:
    """Printable ASCII without NUL padding inside or path separators."""
    return all(0x20 <= b < 0x7F and b not in b"/\\" for b in raw)


def pack_file(header: Header, frames: list[bytes]) -> bytes:
    """Assemble a complete ``.svq`` file from its header and frames."""
    if len(frames) != header.frame_count:
        raise BitstreamError(f"{len(frames)} frames but the header says {header.frame_count}")
    for i, fr in enumerate(frames):
        if len(fr) != header.frame_bytes:
            raise BitstreamError(f"frame {i} has {len(fr)} bytes, expected {header.frame_bytes}")
    body = _PREFIX.pack(MAGIC, FORMAT_VERSION, _HEADER.size) + header.pack() + b"".join(frames)
    return body + _CRC.pack(zlib.crc32(body))


def read_header(data: bytes) -> Header:
    """Parse and validate the header of a ``.svq`` file (no CRC check)."""
    if len(data) < _PREFIX.size:
        raise BitstreamError(f"not an svq file: only {len(data)} bytes")
    magic, version, hlen = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise BitstreamError("not an svq file (bad magic)")
    if version != FORMAT_VERSION:
        raise BitstreamError(
            f"unsupported svq format version {version} (this build reads {FORMAT_VERSION}; "
            "version 1 files were written by svq 0.1)"
        )
    if hlen != _HEADER.size:
        raise BitstreamError(f"corrupt header: length {hlen}, expected {_HEADER.size}")
    if len(data) < _PREFIX.size + hlen:
        raise BitstreamError("truncated svq file: header incomplete")
    h = _parse_header(data[_PREFIX.size : _PREFIX.size + hlen])
    if not 0 < h.frame_bytes <= MAX_FRAME_BYTES or h.frame_length == 0:
        raise BitstreamError(f"corrupt header: frame size {h.frame_bytes} bytes")
    if h.sample_count > h.frame_count * h.frame_length:
        raise BitstreamError("corrupt header: more samples than frames can hold")
    return h


def _check_size(h: Header, size: int) -> int:
    """The file size the header announces; an error if ``size`` differs."""
    expected = HEADER_BYTES + h.frame_count * h.frame_bytes + _CRC.size
    if size < expected:
        raise BitstreamError(f"truncated svq file: {size} bytes, the header announces {expected}")
    if size > expected:
        raise BitstreamError(f"svq file has {size - expected} unexpected trailing bytes")
    return expected


def unpack_file(data: bytes) -> tuple[Header, list[bytes]]:
    """Validate a ``.svq`` file (magic, version, length, CRC-32) and split its frames.

    Raises
    ------
    BitstreamError
        Bad magic, unsupported version, truncated or extended file, CRC mismatch.
    """
    h = read_header(data)
    expected = _check_size(h, len(data))
    (crc,) = _CRC.unpack_from(data, expected - _CRC.size)
    if zlib.crc32(data[: expected - _CRC.size]) != crc:
        raise BitstreamError("svq file is corrupt (CRC-32 mismatch)")
    fb, start = h.frame_bytes, HEADER_BYTES
    frames = [data[start + i * fb : start + (i + 1) * fb] for i in range(h.frame_count)]
    return h, frames


_COPY_CHUNK = 1 << 20


class ContainerReader:
    """Validate a ``.svq`` file on a seekable binary handle, then read its frames in blocks.

    The header, the file size and the CRC-32 are checked on construction
    (one pass over the file in 1 MiB chunks), so a damaged file is rejected
    before any frame is decoded and memory does not depend on its length.

    Parameters
    ----------
    fh : binary file object
        Positioned at the start of the ``.svq`` data; must support ``seek``.
    """

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self._base = fh.tell()
        head = fh.read(HEADER_BYTES)
        self.header = read_header(head)
        size = fh.seek(0, io.SEEK_END) - self._base
        expected = _check_size(self.header, size)
        fh.seek(self._base)
        crc, left = 0, expected - _CRC.size
        while left > 0:
            chunk = fh.read(min(_COPY_CHUNK, left))
            if not chunk:  # pragma: no cover - the size was checked above
                raise BitstreamError("truncated svq file")
            crc = zlib.crc32(chunk, crc)
            left -= len(chunk)
        (stored,) = _CRC.unpack(fh.read(_CRC.size))
        if crc != stored:
            raise BitstreamError("svq file is corrupt (CRC-32 mismatch)")

    def blocks(self, frames_per_block: int) -> Iterator[list[bytes]]:
        """The frames, ``frames_per_block`` at a time (the last block may be shorter)."""
        h = self.header
        self._fh.seek(self._base + HEADER_BYTES)
        for first in range(0, h.frame_count, frames_per_block):
            count = min(frames_per_block, h.frame_count - first)
            raw = self._fh.read(count * h.frame_bytes)
            fb = h.frame_bytes
            yield [raw[i * fb : (i + 1) * fb] for i in range(count)]


class ContainerWriter:
    """Collect frames (spooled to a temporary file beyond 1 MiB), then write the file.

    The header holds the frame and sample counts, which a streaming encoder
    knows only at the end; frames are therefore kept aside and the complete
    file is written by :meth:`write`, with the CRC-32 computed on the way.

    Parameters
    ----------
    frame_bytes : int
        Size of every frame.
    """

    def __init__(self, frame_bytes: int) -> None:
        self.frame_bytes = frame_bytes
        self.frame_count = 0
        self._spool = tempfile.SpooledTemporaryFile(max_size=_COPY_CHUNK)

    def add(self, frames: Sequence[bytes]) -> None:
        """Append frames (each exactly ``frame_bytes`` long)."""
        for fr in frames:
            if len(fr) != self.frame_bytes:
                raise BitstreamError(
                    f"frame {self.frame_count} has {len(fr)} bytes, expected {self.frame_bytes}"
                )
            self._spool.write(fr)
            self.frame_count += 1

    def write(self, out: BinaryIO, header: Header) -> None:
        """Write header, frames and CRC-32 to ``out``."""
        if header.frame_count != self.frame_count or header.frame_bytes != self.frame_bytes:
            raise BitstreamError(
                f"{self.frame_count} frames of {self.frame_bytes} bytes but the header says "
                f"{header.frame_count} of {header.frame_bytes}"
            )
        head = _PREFIX.pack(MAGIC, FORMAT_VERSION, _HEADER.size) + header.pack()
        out.write(head)
        crc = zlib.crc32(head)
        self._spool.seek(0)
        while chunk := self._spool.read(_COPY_CHUNK):
            crc = zlib.crc32(chunk, crc)
            out.write(chunk)
        out.write(_CRC.pack(crc))

    def close(self) -> None:
        """Discard the spooled frames."""
        self._spool.close()


def format_table_markdown() -> str:
    """The bit-level format description, generated from the layout table."""
    sizes = {"B": 1, "H": 2, "I": 4, "Q": 8}
    lines = [
        "# The .svq file format",
        "",
        f"Format version {FORMAT_VERSION}. Generated by `python -m codec.bitstream` from",
        "`codec/bitstream.py:HEADER_FIELDS`; do not edit by hand. All integers are",
        "little-endian.",
        "",
        "| offset (bytes) | size (bytes) | type | field | meaning |",
        "|---|---|---|---|---|",
    ]
    off = 0
    prefix = (
        ("magic", "4s", f"the 4 bytes {MAGIC!r}"),
        ("version", "B", f"format version ({FORMAT_VERSION})"),
        ("header_length", "H", f"length of the header fields that follow ({_HEADER.size})"),
    )
    for name, code, desc in prefix + HEADER_FIELDS:
        size = int(code[:-1]) if code.endswith("s") else sizes[code]
        typ = f"bytes[{size}]" if code.endswith("s") else f"uint{8 * size}"
        lines.append(f"| {off} | {size} | {typ} | `{name}` | {desc} |")
        off += size
    lines += [
        f"| {off} | N x B | bytes | frames | N frames of exactly B = `frame_bytes` bytes each |",
        f"| {off} + N*B | 4 | uint32 | `crc32` | CRC-32 (zlib) of every preceding byte |",
        "",
        "A file is exactly `"
        f"{off} + N*B + 4` bytes. The frame payload layout (envelope indices, then the",
        "residual coder's range-coded bits, zero-padded to B bytes) is described in",
        "`docs/FRAME.md`.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(format_table_markdown(), end="")
