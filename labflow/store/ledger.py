"""The campaign ledger: an append-only, checksummed, fsynced journal -- the source of truth.

Everything a campaign decides or learns is appended here *before* it is acted on or
reported: the campaign header (recipe, lab, seed), each planner decision, each experiment
started, every bluesky document, each experiment finished (with its outcomes), each
interruption. The HDF5 provenance file is derived from it and can always be rebuilt.

Format::

    b"LFLEDGER1\\n"                                      file magic (10 bytes)
    then records:  MAGIC (2 bytes, A5 4C) | length (u32 LE) | crc32 of payload (u32 LE) | payload

The payload is strict JSON (UTF-8, sorted keys): non-finite floats are written as
``{"$float": "nan" | "inf" | "-inf"}``, never as ``NaN`` literals, so any JSON reader can
read a ledger and no NaN is ever silently coerced.

Durability. ``append(record, sync=True)`` writes the record and fsyncs the file before
returning; records appended with ``sync=False`` (bluesky documents) become durable with the
next synced one. A step is reported done only after its synced record.

Opening. Records are read and checked in order. A *torn tail* -- the last record cut short
by a crash or a full disk, or failing its checksum with nothing valid after it -- is copied to
``quarantine/`` and truncated, with a :class:`TornTailWarning`. A record that fails its checksum
with valid records after it is corruption, not a crash: :class:`LedgerCorruptError`, nothing
is truncated.

Full disk. An append that fails with ``ENOSPC`` truncates the file back to the end of the
last whole record (when it can) and raises :class:`~labflow.errors.DiskFullError`; replay never
accepts a partial record either way.
"""

from __future__ import annotations

import errno
import json
import math
import os
import struct
import threading
import warnings
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from labflow.errors import DiskFullError, LedgerCorruptError, ProvenanceError
from labflow.faults import crashpoint

__all__ = ["Ledger", "TornTailWarning", "decode", "encode", "read_new_records", "read_records", "set_file_wrapper"]

FILE_MAGIC = b"LFLEDGER1\n"
REC_MAGIC = b"\xa5\x4c"
_HEAD = struct.Struct("<2sII")
MAX_RECORD = 64 << 20  # a record larger than 64 MiB is treated as damage

# A hook for fault injection (labflow.testing.faults.full_disk): wraps the ledger's file object.
_file_wrapper: Callable[[BinaryIO], BinaryIO] | None = None


def set_file_wrapper(wrapper: Callable[[BinaryIO], BinaryIO] | None) -> None:
    """Wrap every ledger file opened from now on (``None`` to stop). For fault injection."""
    global _file_wrapper
    _file_wrapper = wrapper


class TornTailWarning(UserWarning):
    """A ledger's last record was incomplete (a crash or a full disk mid-write) and was cut off."""


# -- strict JSON -----------------------------------------------------------------------------
def _strict(o: Any) -> Any:
    if isinstance(o, float) or isinstance(o, np.floating):
        f = float(o)
        if math.isfinite(f):
            return f
        return {"$float": "nan" if math.isnan(f) else ("inf" if f > 0 else "-inf")}
    if isinstance(o, dict):
        return {str(k): _strict(v) for k, v in o.items()}
    if isinstance(o, (list, tuple, set)):
        return [_strict(v) for v in o]
    if isinstance(o, np.ndarray):
        return [_strict(v) for v in o.tolist()]
    if isinstance(o, (np.integer, np.bool_)):
        return o.item()
    if o is None or isinstance(o, (str, int, bool)):
        return o
    return str(o)


def _hook(d: dict) -> Any:
    if len(d) == 1 and "$float" in d:
        return float(d["$float"])
    return d


def _plain_default(o: Any) -> Any:
    if isinstance(o, (np.integer, np.bool_)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (set, tuple)):
        return list(o)
    raise TypeError  # anything else: the strict path decides


def encode(record: Any) -> bytes:
    """Strict JSON bytes for ``record`` (non-finite floats tagged, never NaN literals).

    Most records (every bluesky document) hold only plain values: they are dumped as they are,
    and only a record the plain dump refuses (a NaN, an odd key or value) is walked by
    :func:`_strict`. Both give the same bytes, except for ``True``/``False``/``None`` used as
    dictionary keys (``"true"`` on the fast path, ``"True"`` on the strict one); readers take
    either."""
    try:
        text = json.dumps(record, sort_keys=True, allow_nan=False, separators=(",", ":"), default=_plain_default)
    except (ValueError, TypeError):
        text = json.dumps(_strict(record), sort_keys=True, allow_nan=False, separators=(",", ":"))
    return text.encode()


def decode(payload: bytes) -> Any:
    return json.loads(payload, object_hook=_hook)


# -- reading -----------------------------------------------------------------------------------
def _scan(data: bytes) -> tuple[list[tuple[int, bytes]], int, str]:
    """Parse ``data``: ([(offset, payload)], end of the last good record, problem or '')."""
    if not data.startswith(FILE_MAGIC):
        if FILE_MAGIC.startswith(data):  # the file magic itself was torn
            return [], 0, "torn"
        return [], 0, "magic"
    pos = len(FILE_MAGIC)
    out: list[tuple[int, bytes]] = []
    n = len(data)
    while pos < n:
        if n - pos < _HEAD.size:
            return out, pos, "torn"
        magic, length, crc = _HEAD.unpack_from(data, pos)
        end = pos + _HEAD.size + length
        if magic != REC_MAGIC or length > MAX_RECORD or end > n:
            return out, pos, "torn"
        payload = data[pos + _HEAD.size : end]
        if zlib.crc32(payload) != crc:
            return out, pos, "crc"
        out.append((pos, payload))
        pos = end
    return out, pos, ""


def _valid_record_after(data: bytes, start: int) -> int | None:
    """Offset of a whole, checksummed record starting after ``start``, if any (damage, not a tear)."""
    i = data.find(REC_MAGIC, start + 1)
    while i != -1:
        if len(data) - i >= _HEAD.size:
            _, length, crc = _HEAD.unpack_from(data, i)
            end = i + _HEAD.size + length
            if length <= MAX_RECORD and end <= len(data) and zlib.crc32(data[i + _HEAD.size : end]) == crc:
                return i
        i = data.find(REC_MAGIC, i + 1)
    return None


def read_records(path: str | Path, *, repair: bool = False, quarantine: Path | None = None) -> list[dict]:
    """Every record of a ledger, in order. See the module docstring for torn tails and corruption.

    ``repair=True`` truncates a torn tail (after copying it into ``quarantine``); otherwise the
    torn tail is ignored (with a warning) and the file is left as it is.
    """
    p = Path(path)
    data = p.read_bytes()
    recs, good_end, problem = _scan(data)
    if problem == "magic":
        raise LedgerCorruptError(f"{p} is not a labflow ledger (bad file magic)")
    if problem:
        later = _valid_record_after(data, good_end)
        if later is not None:
            raise LedgerCorruptError(
                f"{p}: the record at byte {good_end} is damaged ({'checksum' if problem == 'crc' else 'framing'}) "
                f"but whole records follow it (byte {later}): the ledger was corrupted, not torn by a crash",
                hint="restore the campaign directory from a backup; labflow will not guess which records to trust",
            )
        torn = len(data) - good_end
        warnings.warn(TornTailWarning(f"{p}: the last {torn} bytes (an incomplete record) were cut off"), stacklevel=2)
        if repair:
            if quarantine is not None:
                quarantine.mkdir(parents=True, exist_ok=True)
                (quarantine / f"ledger-tail-at-{good_end}.bin").write_bytes(data[good_end:])
            with open(p, "r+b") as f:
                if good_end == 0:
                    f.truncate(0)
                    f.write(FILE_MAGIC)
                else:
                    f.truncate(good_end)
                f.flush()
                os.fsync(f.fileno())
    out = []
    for offset, payload in recs:
        try:
            out.append(decode(payload))
        except (ValueError, UnicodeDecodeError) as exc:  # checksum fine, JSON not: written wrong
            raise LedgerCorruptError(f"{p}: record at byte {offset} is not valid JSON: {exc}") from None
    return out


def read_new_records(path: str | Path, offset: int = 0, *, skip_documents: bool = False) -> tuple[list[dict], int]:
    """The whole records appended to a ledger since byte ``offset`` (0: from the start), and the
    offset to continue from. For readers that follow a live ledger (the dashboard): a record still
    being written, or a torn tail, is left for the next call; nothing is repaired or warned about.
    ``skip_documents``: leave out the bluesky documents (``doc`` records, most of a ledger's bytes)
    without decoding them -- payloads have sorted keys, so theirs start with ``{"doc":``."""
    with open(path, "rb") as f:
        if offset == 0:
            magic = f.read(len(FILE_MAGIC))
            if magic != FILE_MAGIC:
                if FILE_MAGIC.startswith(magic):
                    return [], 0
                raise LedgerCorruptError(f"{path} is not a labflow ledger (bad file magic)")
            offset = len(FILE_MAGIC)
        f.seek(offset)
        data = f.read()
    out: list[dict] = []
    pos = 0
    while len(data) - pos >= _HEAD.size:
        magic, length, crc = _HEAD.unpack_from(data, pos)
        end = pos + _HEAD.size + length
        if magic != REC_MAGIC or length > MAX_RECORD or end > len(data) or zlib.crc32(data[pos + _HEAD.size : end]) != crc:
            break
        payload = data[pos + _HEAD.size : end]
        if not (skip_documents and payload.startswith(b'{"doc":')):
            out.append(decode(payload))
        pos = end
    return out, offset + pos


# -- writing -----------------------------------------------------------------------------------
def _is_enospc(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and (exc.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(exc))


class Ledger:
    """An open ledger, appended to by one process (the campaign's lock holder). Thread-safe."""

    def __init__(self, path: str | Path, *, quarantine: Path | None = None) -> None:
        self.path = Path(path)
        self.quarantine = quarantine
        self._lock = threading.Lock()
        self.records_written = 0
        new = not self.path.exists() or self.path.stat().st_size == 0
        if not new:  # cut a torn tail off before appending after it
            read_records(self.path, repair=True, quarantine=quarantine)
        raw = open(self.path, "ab")  # noqa: SIM115 - held open for the campaign
        self._f: BinaryIO = _file_wrapper(raw) if _file_wrapper is not None else raw
        self._raw = raw
        if new:
            self._write(FILE_MAGIC, 0)
            self._sync()
            fsync_dir(self.path.parent)

    def _write(self, blob: bytes, start: int) -> None:
        try:
            self._f.write(blob)
            self._f.flush()
        except OSError as exc:
            self._undo(start)
            if _is_enospc(exc):
                raise DiskFullError(
                    f"disk full while appending to the campaign ledger {self.path}: the campaign is paused",
                    hint="free some space on that disk, then run: labflow resume " + str(self.path.parent),
                ) from exc
            raise ProvenanceError(f"cannot write the campaign ledger {self.path}: {exc}") from exc

    def _undo(self, start: int) -> None:
        """Cut a partly written record off (best effort; replay drops it anyway)."""
        try:
            self._raw.flush()
        except OSError:
            pass
        try:
            if os.fstat(self._raw.fileno()).st_size > start:
                os.ftruncate(self._raw.fileno(), start)
            self._raw.seek(start)
        except OSError:
            pass

    def _sync(self) -> None:
        crashpoint("ledger.before_fsync")
        try:
            os.fsync(self._raw.fileno())
        except OSError as exc:
            if _is_enospc(exc):
                raise DiskFullError(f"disk full while syncing {self.path}", hint="free some space, then labflow resume") from exc
            raise
        crashpoint("ledger.after_fsync")

    def append(self, record: dict[str, Any], *, sync: bool = True) -> None:
        """Append one record; with ``sync`` it is on disk when this returns."""
        payload = encode(record)
        blob = _HEAD.pack(REC_MAGIC, len(payload), zlib.crc32(payload)) + payload
        with self._lock:
            start = os.fstat(self._raw.fileno()).st_size  # the true end (a failed write may have moved tell())
            self._write(blob, start)
            self.records_written += 1
            if sync:
                self._sync()

    def sync(self) -> None:
        with self._lock:
            self._sync()

    def close(self) -> None:
        with self._lock:
            if not self._raw.closed:
                try:
                    self._f.flush()
                    os.fsync(self._raw.fileno())
                except OSError:
                    pass
                self._raw.close()

    def __iter__(self) -> Iterator[dict]:
        return iter(read_records(self.path))


def fsync_dir(path: Path) -> None:
    """Make a rename or create in ``path`` durable. Filesystems that cannot fsync a directory
    (some network and FUSE mounts) raise OSError here; there the rename is as durable as that
    filesystem allows, so the error is not fatal."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` as temp -> fsync -> replace -> fsync dir: never a truncated file."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    crashpoint("snapshot.before_replace")
    os.replace(tmp, p)
    fsync_dir(p.parent)
