"""The ``.svq`` container: header with its own CRC-32, then frames in checked blocks.

One layout table (:data:`HEADER_FIELDS`) drives packing, parsing and the
format documentation (``python -m codec.bitstream`` prints the Markdown that
``docs/FORMAT.md`` holds; a test checks they agree). Any change of a number
in this table is a new :data:`FORMAT_VERSION`.

File layout (all integers little-endian)::

    magic (4 bytes) | version (u8) | header_length (u16) | header fields
    | header CRC-32 (u32) over the bytes before it
    | block 0: frames 0 .. 49 | block CRC-32 (u32)
    | block 1: frames 50 .. 99 | block CRC-32 (u32)
    | ...
    | last block: the remaining 1 .. 50 frames | block CRC-32 (u32)

Every frame has exactly ``frame_bytes`` bytes; a block holds
:data:`CHECK_FRAMES` frames (1 s), the last one possibly fewer. The check of
block ``k`` is the CRC-32 of the header bytes (prefix and fields, without
their CRC), then ``k`` as u32, then the block's frames: a block copied from
another file or another position fails its check too. Damage in a block
stays in that block (:func:`check_file`, :class:`ContainerReader` report it;
the decoder can conceal it as lost frames); a damaged header is always an
error.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator, Sequence
from typing import BinaryIO, Literal, NamedTuple

from codec.errors import BitstreamError, DamagedStreamError, ParameterError

__all__ = [
    "MAGIC",
    "FORMAT_VERSION",
    "HEADER_FIELDS",
    "CHECK_FRAMES",
    "Header",
    "pack_file",
    "unpack_file",
    "check_file",
    "read_header",
    "reseal",
    "file_size",
    "damage_error",
    "HEADER_BYTES",
    "ContainerReader",
    "ContainerWriter",
    "format_table_markdown",
]

MAGIC = b"SVQ\x1a"
FORMAT_VERSION = 8
WRITTEN_BY = {v: f"svq 0.{v}" for v in range(1, FORMAT_VERSION)}
"""The releases that wrote the older format versions (named in the error)."""
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
_HEAD = _PREFIX.size + _HEADER.size  # bytes the header CRC covers
HEADER_BYTES = _HEAD + _CRC.size
"""Bytes before the first frame (prefix, header fields and the header's CRC-32)."""
CHECK_FRAMES = 50
"""Frames per checked block (1 s): the unit that damage is confined to."""
MAX_FRAME_BYTES = 1024

OnDamage = Literal["raise", "conceal"]


class Header(NamedTuple):
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
        for name, v in zip(self._fields, self, strict=True):
            if name == "envelope_id":
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


def _check_on_damage(on_damage: str) -> None:
    if on_damage not in ("raise", "conceal"):
        raise ParameterError(f"on_damage must be 'raise' or 'conceal', got {on_damage!r}")


def _head(header: Header) -> bytes:
    """Prefix and header fields: the bytes the header CRC covers."""
    return _PREFIX.pack(MAGIC, FORMAT_VERSION, _HEADER.size) + header.pack()


def _block_crc(head_crc: int, k: int, frames: bytes) -> int:
    """Check of block ``k``: CRC-32 of head, ``k`` (u32), frames (``head_crc``: CRC of head)."""
    return zlib.crc32(frames, zlib.crc32(_CRC.pack(k & 0xFFFFFFFF), head_crc))


def _block_sizes(h: Header) -> Iterator[tuple[int, int]]:
    """(block number, frames in it) of every block of a stream."""
    for k, first in enumerate(range(0, h.frame_count, CHECK_FRAMES)):
        yield k, min(CHECK_FRAMES, h.frame_count - first)


def file_size(h: Header) -> int:
    """Bytes of a file with this header: header, frames, one CRC-32 per block."""
    blocks = -(-h.frame_count // CHECK_FRAMES)
    return HEADER_BYTES + h.frame_count * h.frame_bytes + blocks * _CRC.size


def pack_file(header: Header, frames: Sequence[bytes]) -> bytes:
    """Assemble a complete ``.svq`` file from its header and frames."""
    if len(frames) != header.frame_count:
        raise BitstreamError(f"{len(frames)} frames but the header says {header.frame_count}")
    for i, fr in enumerate(frames):
        if len(fr) != header.frame_bytes:
            raise BitstreamError(f"frame {i} has {len(fr)} bytes, expected {header.frame_bytes}")
    head = _head(header)
    head_crc = zlib.crc32(head)
    parts = [head, _CRC.pack(head_crc)]
    for k, count in _block_sizes(header):
        block = b"".join(frames[k * CHECK_FRAMES : k * CHECK_FRAMES + count])
        parts += [block, _CRC.pack(_block_crc(head_crc, k, block))]
    return b"".join(parts)


def read_header(data: bytes) -> Header:
    """Parse and validate the header of a ``.svq`` file, its CRC-32 included."""
    if len(data) < _PREFIX.size:
        raise BitstreamError(f"not an svq file: only {len(data)} bytes")
    magic, version, hlen = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise BitstreamError("not an svq file (bad magic)")
    if version != FORMAT_VERSION:
        older = WRITTEN_BY.get(version)
        raise BitstreamError(
            f"unsupported svq format version {version} (this build reads {FORMAT_VERSION}"
            + (f"; version {version} files were written by {older})" if older else ")")
        )
    if hlen != _HEADER.size:
        raise BitstreamError(f"corrupt header: length {hlen}, expected {_HEADER.size}")
    if len(data) < HEADER_BYTES:
        raise BitstreamError("truncated svq file: header incomplete")
    (stored,) = _CRC.unpack_from(data, _HEAD)
    if zlib.crc32(data[:_HEAD]) != stored:
        raise BitstreamError("svq header is damaged (CRC-32 mismatch)")
    h = _parse_header(data[_PREFIX.size : _HEAD])
    if not 0 < h.frame_bytes <= MAX_FRAME_BYTES or h.frame_length == 0:
        raise BitstreamError(f"corrupt header: frame size {h.frame_bytes} bytes")
    if h.sample_rate == 0:
        raise BitstreamError("corrupt header: sample rate 0")
    if h.sample_count > h.frame_count * h.frame_length:
        raise BitstreamError("corrupt header: more samples than frames can hold")
    return h


def _check_size(h: Header, size: int) -> int:
    """The file size the header announces; an error if ``size`` differs."""
    expected = file_size(h)
    if size < expected:
        raise BitstreamError(f"truncated svq file: {size} bytes, the header announces {expected}")
    if size > expected:
        raise BitstreamError(f"svq file has {size - expected} unexpected trailing bytes")
    return expected


def damage_error(h: Header, damaged: Sequence[int]) -> DamagedStreamError:
    """The one-line error for a stream whose blocks ``damaged`` fail their checks."""
    k = damaged[0]
    n = -(-h.frame_count // CHECK_FRAMES)
    block_s = CHECK_FRAMES * h.frame_length / h.sample_rate
    end = min((k + 1) * block_s, h.sample_count / h.sample_rate)
    others = f"; {len(damaged)} of {n} blocks damaged" if len(damaged) > 1 else ""
    return DamagedStreamError(
        f"svq file is damaged: block {k} ({k * block_s:.2f}-{end:.2f} s) fails its "
        f"CRC-32 check{others}",
        tuple(damaged),
    )


def check_file(data: bytes) -> tuple[Header, list[bytes], tuple[int, ...]]:
    """Validate header and size, split the frames and find the damaged blocks.

    Returns
    -------
    header : Header
    frames : list of bytes
        All ``frame_count`` frames, those of damaged blocks included.
    damaged : tuple of int
        Numbers of the blocks whose CRC-32 fails (block ``k`` holds frames
        ``k * CHECK_FRAMES`` onwards).

    Raises
    ------
    BitstreamError
        Bad magic, unsupported version, damaged header, truncated or extended file.
    """
    h = read_header(data)
    _check_size(h, len(data))
    head_crc = zlib.crc32(data[:_HEAD])
    fb, pos = h.frame_bytes, HEADER_BYTES
    frames: list[bytes] = []
    damaged: list[int] = []
    for k, count in _block_sizes(h):
        block = data[pos : pos + count * fb]
        (stored,) = _CRC.unpack_from(data, pos + count * fb)
        if _block_crc(head_crc, k, block) != stored:
            damaged.append(k)
        frames += [block[i * fb : (i + 1) * fb] for i in range(count)]
        pos += count * fb + _CRC.size
    return h, frames, tuple(damaged)


def unpack_file(data: bytes) -> tuple[Header, list[bytes]]:
    """Validate a ``.svq`` file (magic, version, header, length, every block) and split its frames.

    Raises
    ------
    BitstreamError
        Bad magic, unsupported version, damaged header, truncated or extended file;
        :class:`codec.errors.DamagedStreamError` when a block fails its CRC-32.
    """
    h, frames, damaged = check_file(data)
    if damaged:
        raise damage_error(h, damaged)
    return h, frames


def reseal(data: bytes) -> bytes:
    """``data`` with the header CRC and every complete block's CRC recomputed.

    For tests and fuzzers: whatever was changed in the header or the frames
    then reaches the parser and the frame decoder instead of failing a check.
    The layout follows the header's ``frame_bytes`` and ``frame_count``, even
    where they disagree with the length of ``data``; bytes beyond are kept.
    """
    if len(data) < HEADER_BYTES:
        return data
    head_crc = zlib.crc32(data[:_HEAD])
    out = bytearray(data)
    _CRC.pack_into(out, _HEAD, head_crc)
    values = _HEADER.unpack_from(data, _PREFIX.size)
    names = [name for name, _, _ in HEADER_FIELDS]
    d = dict(zip(names, values, strict=True))
    fb, n = int(d["frame_bytes"]), int(d["frame_count"])
    pos, k = HEADER_BYTES, 0
    while fb and k * CHECK_FRAMES < n:
        size = min(CHECK_FRAMES, n - k * CHECK_FRAMES) * fb
        if pos + size + _CRC.size > len(out):
            break
        _CRC.pack_into(out, pos + size, _block_crc(head_crc, k, bytes(out[pos : pos + size])))
        pos += size + _CRC.size
        k += 1
    return bytes(out)


_COPY_CHUNK = 1 << 20


class ContainerReader:
    """Validate a ``.svq`` file on a seekable binary handle, then read its frames in blocks.

    The header, the file size and every block's CRC-32 are checked on
    construction (one pass over the file, a block at a time), so a damaged
    file is rejected before any frame is decoded and memory does not depend
    on its length.

    Parameters
    ----------
    fh : binary file object
        Positioned at the start of the ``.svq`` data; must support ``seek``.
    on_damage : {'raise', 'conceal'}
        ``'raise'`` (default): a block that fails its check is an error
        (:class:`codec.errors.DamagedStreamError`). ``'conceal'``: the numbers
        of the damaged blocks are in :attr:`damaged` and :meth:`blocks` gives
        ``None`` for their frames (lost frames to the decoder). A damaged
        header is an error either way.
    """

    def __init__(self, fh: BinaryIO, on_damage: OnDamage = "raise") -> None:
        _check_on_damage(on_damage)
        self._fh = fh
        self._base = fh.tell()
        self._on_damage = on_damage
        head = fh.read(HEADER_BYTES)
        self.header = read_header(head)
        self._head_crc = zlib.crc32(head[:_HEAD])
        size = fh.seek(0, io.SEEK_END) - self._base
        _check_size(self.header, size)
        fh.seek(self._base + HEADER_BYTES)
        self.damaged: tuple[int, ...] = tuple(
            k for k, count in _block_sizes(self.header) if self._read_block(k, count) is None
        )
        """Numbers of the blocks that fail their CRC-32 (block k: frames 50k onwards)."""
        if self.damaged and on_damage == "raise":
            raise damage_error(self.header, self.damaged)

    def _read_block(self, k: int, count: int) -> bytes | None:
        """The frames of block ``k`` at the current position; ``None`` if its check fails."""
        size = count * self.header.frame_bytes
        raw = self._fh.read(size + _CRC.size)
        if len(raw) != size + _CRC.size:  # pragma: no cover - the size was checked
            raise BitstreamError("truncated svq file")
        (stored,) = _CRC.unpack_from(raw, size)
        block = raw[:size]
        return block if _block_crc(self._head_crc, k, block) == stored else None

    def blocks(self, frames_per_block: int) -> Iterator[list[bytes | None]]:
        """The frames, ``frames_per_block`` at a time (the last group may be shorter).

        Frames of a damaged block are ``None`` (only with ``on_damage='conceal'``;
        a block found damaged now but not on construction raises in ``'raise'``
        mode, as the file changed in between).
        """
        if frames_per_block < 1:
            raise ParameterError(f"frames_per_block must be positive, got {frames_per_block}")
        h = self.header
        fb = h.frame_bytes
        self._fh.seek(self._base + HEADER_BYTES)
        pending: list[bytes | None] = []
        for k, count in _block_sizes(h):
            block = self._read_block(k, count)
            if block is None:
                if self._on_damage == "raise":
                    raise damage_error(h, [k])
                pending += [None] * count
            else:
                pending += [block[i * fb : (i + 1) * fb] for i in range(count)]
            while len(pending) >= frames_per_block:
                yield pending[:frames_per_block]
                del pending[:frames_per_block]
        if pending:
            yield pending


class ContainerWriter:
    """Collect frames (spooled to a temporary file beyond 1 MiB), then write the file.

    The header holds the frame and sample counts, which a streaming encoder
    knows only at the end; frames are therefore kept aside and the complete
    file is written by :meth:`write`, a block at a time, with each block's
    CRC-32 computed on the way.

    Parameters
    ----------
    frame_bytes : int
        Size of every frame.
    """

    def __init__(self, frame_bytes: int) -> None:
        import tempfile  # (the encoder's: not at import, for the decoder's start-up)

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
        """Write the header, its CRC-32, then every block of frames with its CRC-32 to ``out``."""
        if header.frame_count != self.frame_count or header.frame_bytes != self.frame_bytes:
            raise BitstreamError(
                f"{self.frame_count} frames of {self.frame_bytes} bytes but the header says "
                f"{header.frame_count} of {header.frame_bytes}"
            )
        head = _head(header)
        head_crc = zlib.crc32(head)
        out.write(head + _CRC.pack(head_crc))
        self._spool.seek(0)
        for k, count in _block_sizes(header):
            block = self._spool.read(count * self.frame_bytes)
            if len(block) != count * self.frame_bytes:  # pragma: no cover - counted in add()
                raise BitstreamError("spooled frames are missing")
            out.write(block)
            out.write(_CRC.pack(_block_crc(head_crc, k, block)))

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
        "little-endian. Older versions: "
        + ", ".join(f"{v} ({who})" for v, who in sorted(WRITTEN_BY.items()))
        + "; this build reads only",
        f"version {FORMAT_VERSION}.",
        "",
        "## Header",
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
    lines.append(f"| {off} | 4 | uint32 | `header_crc32` | CRC-32 (zlib) of bytes 0 to {off - 1} |")
    c = CHECK_FRAMES
    lines += [
        "",
        f"## Blocks (from byte {HEADER_BYTES})",
        "",
        f"The N frames follow in blocks of C = {c} frames (1 s), the last block holding",
        f"the remaining N - {c}*(K-1) frames; K = ceil(N / {c}) blocks, none when N = 0.",
        "Block k (k = 0, 1, ...):",
        "",
        "| size (bytes) | type | field | meaning |",
        "|---|---|---|---|",
        f"| n_k x B | bytes | frames | frames {c}k to {c}k + n_k - 1, exactly B = "
        "`frame_bytes` bytes each |",
        f"| 4 | uint32 | `block_crc32` | CRC-32 (zlib) of bytes 0 to {off - 1} (the header "
        "without its CRC), then k as uint32, then the block's frames |",
        "",
        f"A file is exactly `{HEADER_BYTES} + N*B + 4*K` bytes; the file ends with the",
        "last block's CRC (no other trailer). A damaged header (or a file of another",
        "length) is an error; a block whose CRC fails is damaged, and its frames can be",
        "concealed as lost (`svq decode --conceal-damaged`). Binding the header and k",
        "into each block's CRC makes a block copied from another file or position fail.",
        "",
        "The frame payload layout (envelope indices, then the residual coder's",
        "range-coded bits, zero-padded to B bytes) is described in `docs/FRAME.md`.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(format_table_markdown(), end="")
