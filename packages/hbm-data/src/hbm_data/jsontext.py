"""Reading JSON text that may be hostile: a size limit (gzip inflated in bounded chunks), a
nesting limit and overlong integers, each reported as a problem of the file, never raised.

An episode file is data from anywhere (a shared folder, a download): a 6 GB gzip bomb, JSON
nested 200 000 deep or a 5000-digit integer must give the same kind of message as a missing
field, not exhaust memory or end in a RecursionError or a bare ValueError.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import zlib
from pathlib import Path
from typing import Any

import orjson

from .validation import ProblemLog

__all__ = [
    "DEFAULT_MAX_JSON_BYTES",
    "MAX_INT_DIGITS",
    "MAX_JSON_BYTES_ENV",
    "MAX_JSON_DEPTH",
    "decode_json",
    "limit_hint",
    "max_json_bytes",
]


#: The most bytes of JSON text an episode file may hold (after gzip decompression): 1 GiB, some
#: 1000 recorded LunarLander episodes of 1000 steps. Parsed, it takes several times that in
#: memory, so a file far larger (or a small `.json.gz` that inflates to gigabytes) is refused
#: before it is read whole. Raise it per call (`max_bytes=`, `hbm-data check --max-bytes`) or
#: for every load with the environment variable `HBM_DATA_MAX_JSON_BYTES`.
DEFAULT_MAX_JSON_BYTES = 1 << 30

#: The environment variable that raises (or lowers) `DEFAULT_MAX_JSON_BYTES`.
MAX_JSON_BYTES_ENV = "HBM_DATA_MAX_JSON_BYTES"

#: Integers with more digits are not converted (Python's own limit for `int(str)`); no field of
#: an episode file needs more than 20.
MAX_INT_DIGITS = 4300

#: orjson refuses JSON nested deeper (its documented limit); an episode file needs 5 levels.
MAX_JSON_DEPTH = 1024


def max_json_bytes(max_bytes: int | None = None) -> int:
    """The limit in force: `max_bytes`, else `$HBM_DATA_MAX_JSON_BYTES`, else the default."""
    if max_bytes is None:
        text = os.environ.get(MAX_JSON_BYTES_ENV, "").strip()
        if not text:
            return DEFAULT_MAX_JSON_BYTES
        try:
            max_bytes = int(text)
        except ValueError:
            raise ValueError(
                f"{MAX_JSON_BYTES_ENV}={text!r}: expected a whole number of bytes"
            ) from None
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
        raise ValueError(f"max_bytes must be a positive number of bytes, got {max_bytes!r}")
    return max_bytes


def limit_hint(limit: int) -> str:
    return (
        f"the limit is {limit} bytes; raise it with `hbm-data check --max-bytes N`, "
        f"`max_bytes=` or {MAX_JSON_BYTES_ENV}"
    )


class _HugeInt:
    """Stands for an integer literal too long to convert; validation reports it where it is."""

    def __init__(self, digits: int) -> None:
        self.digits = digits

    def __repr__(self) -> str:
        return f"a {self.digits}-digit number"


class _IntParser:
    """`parse_int` for `json.loads` that keeps overlong literals out of `int()` (which raises
    a bare ValueError without saying where), remembering how many it saw."""

    def __init__(self) -> None:
        self.huge: list[_HugeInt] = []

    def __call__(self, text: str) -> int | _HugeInt:
        digits = len(text) - text.startswith("-")
        if digits <= MAX_INT_DIGITS:
            return int(text)
        self.huge.append(_HugeInt(digits))
        return self.huge[-1]


def _inflate(data: bytes, limit: int, log: ProblemLog) -> bytes | None:
    """The decompressed bytes of a gzip file, decompressed in bounded chunks up to `limit`."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as f:
            out = f.read(limit + 1)  # GzipFile inflates chunk by chunk up to the size asked
    except (EOFError, gzip.BadGzipFile, OSError, zlib.error) as exc:
        log.add(f"cannot be read as gzip-compressed JSON: {exc}")
        return None
    if len(out) > limit:
        log.add(f"inflates to more than {limit} bytes of JSON ({limit_hint(limit)})")
        return None
    return out


def decode_json(path: Path, data: bytes, log: ProblemLog, limit: int) -> tuple[Any, list[_HugeInt]]:
    """(parsed JSON, overlong integers in it), or (None, []) with the reason logged. orjson
    first (fast); the standard library second, for what orjson rejects (NaN/Infinity, overlong
    integers: validation then reports them by place) and for its error messages."""
    if path.suffix == ".gz":
        inflated = _inflate(data, limit, log)
        if inflated is None:
            return None, []
        data = inflated
    try:
        return orjson.loads(data), []
    except orjson.JSONDecodeError as exc:
        if str(exc).startswith("depth limit exceeded"):
            log.add(
                f"not valid episode JSON: nested more than {MAX_JSON_DEPTH} levels deep (an "
                f"episode file needs 5) at line {exc.lineno}, column {exc.colno}"
            )
            return None, []
    ints = _IntParser()
    try:
        return json.loads(data, parse_int=ints), ints.huge
    except json.JSONDecodeError as exc:
        ends_early = exc.pos >= len(exc.doc.rstrip()) or exc.msg.startswith("Unterminated")
        hint = " (the file looks truncated)" * (ends_early and bool(exc.doc.strip()))
        log.add(f"not valid JSON{hint}: {exc.msg} (line {exc.lineno}, column {exc.colno})")
    except UnicodeDecodeError as exc:
        log.add(f"not valid JSON: not UTF-8 text ({exc})")
    except RecursionError:
        log.add("not valid episode JSON: nested too deep to parse (an episode file needs 5)")
    except ValueError as exc:  # anything else the parser refuses, named rather than raised
        log.add(f"not valid JSON: {exc}")
    return None, []
