"""Where episode files live and how they are named (`<subject>_data_<env>.json[.gz]`).

A subject is a name (`sub07`, `007`, `sim01`), `expert:<name>` (the file of subject
`expert-<name>`: an expert dataset imported with `hbm-data import-hf` / `import-minari`), or,
where a caller allows it (`load_human_data`), the path of an episode file.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

import platformdirs

from .envs import ENVIRONMENTS

DATA_DIR_ENV_VAR = "HBM_DATA_DIR"
_FILE_RE = re.compile(r"^(?P<subject>.+)_data_(?P<env>[a-z0-9_-]+)\.json(?:\.gz)?$")

#: `expert:<name>` names the file of subject `expert-<name>` (no colon in file names, so the
#: data folder works on every filesystem).
EXPERT_PREFIX = "expert:"
EXPERT_FILE_PREFIX = "expert-"


def data_dir() -> Path:
    """`$HBM_DATA_DIR` if set, else the per-user data directory (e.g. `~/.local/share/hbm`)."""
    env = os.environ.get(DATA_DIR_ENV_VAR)
    return Path(env).expanduser() if env else Path(platformdirs.user_data_dir("hbm"))


#: The longest subject name, in UTF-8 bytes: its file name (`<subject>_data_<env>.json.gz`,
#: the sidecar `<subject>_data_<env>.meta.json`, a writer's temp file beside them) must stay
#: within the 255 bytes that common filesystems allow in one name.
MAX_SUBJECT_BYTES = 100

#: The most bytes of one path component on common filesystems (ext4, XFS, APFS, NTFS).
_MAX_NAME_BYTES = 255


def check_subject(subject: object, *, allow_path: bool = False) -> str:
    """`subject` itself if it names a subject file, else a TypeError/ValueError saying why.

    Subject ids are strings everywhere ("0123" and "007" stay those strings): a number here
    has already lost its leading zeros, so it is refused with the fix (quote it). A name has
    at most `MAX_SUBJECT_BYTES` bytes and no slash or control character. With `allow_path`, a
    path to an episode file (`is_path_subject`) is accepted too, as a string, unless it climbs
    with `..` (it would name a file outside the folder it seems to be in) or has a component
    longer than a file name can be.
    """
    if allow_path and isinstance(subject, os.PathLike):
        subject = os.fspath(subject)
    if not isinstance(subject, str):
        raise TypeError(
            f"subject must be a string such as 'sub07' or '007', got {type(subject).__name__} "
            f'{subject!r} (in YAML, quote it: subject: "007")'
        )
    if allow_path and subject and subject == subject.strip() and is_path_subject(subject):
        return _check_path_subject(subject)
    name = subject.removeprefix(EXPERT_PREFIX)
    if not name or subject != subject.strip() or any(c in subject for c in "/\\\0"):
        raise ValueError(
            f"subject must be a non-empty name without slashes or surrounding spaces (it names "
            f"the file <subject>_data_<env>.json; `expert:<name>` names expert-<name>), got "
            f"{subject!r}"
            + " (or the path of an episode file, ending in .json or .json.gz)"
            * allow_path
        )
    if any(unicodedata.category(c) == "Cc" for c in subject):
        raise ValueError(
            f"subject must not hold control characters (tabs, newlines), got {subject!r}"
        )
    size = len(subject_file_stem(subject).encode("utf-8", "surrogatepass"))
    if size > MAX_SUBJECT_BYTES:
        raise ValueError(
            f"subject {_shorten(subject)} is {size} bytes long; at most {MAX_SUBJECT_BYTES} "
            "fit in its file name (<subject>_data_<env>.json.gz)"
        )
    return subject


def _shorten(text: str, keep: int = 40) -> str:
    """`repr` of a long input cut to its first characters, with its length, for messages."""
    if len(text) <= keep:
        return repr(text)
    return f"{text[:keep]!r}… ({len(text)} characters)"


def _check_path_subject(subject: str) -> str:
    parts = re.split(r"[/\\]", subject)
    if ".." in parts:
        resolved = Path(subject).expanduser().resolve()
        raise ValueError(
            f"subject {_shorten(subject, 120)} climbs out of its folder with '..' (it is "
            f"{resolved}); give that absolute path, or a path below the current folder"
        )
    long = [p for p in parts if len(p.encode("utf-8", "surrogatepass")) > _MAX_NAME_BYTES]
    if long:
        raise ValueError(
            f"subject {_shorten(subject)} has a path component of "
            f"{len(long[0].encode('utf-8', 'surrogatepass'))} bytes; a file name holds at most "
            f"{_MAX_NAME_BYTES}"
        )
    return subject


def is_path_subject(subject: str) -> bool:
    """True for a subject given as the path of an episode file rather than a name: it holds a
    path separator, which no name may, and ends in `.json` or `.json.gz`
    (`./sub01_data_cartpole.json` for a file here). `../sub01` is neither: refused."""
    return any(c in subject for c in "/\\") and subject.endswith((".json", ".json.gz"))


def subject_file_stem(subject: str) -> str:
    """The `<subject>` part of a subject's file name: `expert:cartpole` is `expert-cartpole`."""
    if subject.startswith(EXPERT_PREFIX):
        return EXPERT_FILE_PREFIX + subject.removeprefix(EXPERT_PREFIX)
    return subject


def episode_file_name(env_name: str, subject: str, *, compressed: bool = False) -> str:
    return f"{subject}_data_{env_name}.json" + (".gz" if compressed else "")


def find_episode_file(env_name: str, subject: str, directory: Path | str | None = None) -> Path:
    """The subject's existing `.json` or `.json.gz` file, else the `.json` path.

    `expert:<name>` is the file of `expert-<name>`; a path subject (`is_path_subject`) is that
    path, whatever `directory` is.
    """
    if is_path_subject(subject):
        return Path(subject).expanduser()
    subject = subject_file_stem(subject)
    directory = data_dir() if directory is None else Path(directory)
    plain = directory / episode_file_name(env_name, subject)
    gz = directory / episode_file_name(env_name, subject, compressed=True)
    if not plain.exists() and gz.exists():
        return gz
    return plain


def parse_episode_file_name(path: Path | str) -> tuple[str, str] | None:
    """`(subject, env_name)` from a standard file name, or None if it does not follow it."""
    m = _FILE_RE.match(Path(path).name)
    if m is None or m["env"] not in ENVIRONMENTS:
        return None
    return m["subject"], m["env"]


def sidecar_path(path: Path | str) -> Path:
    """`<name>.meta.json` next to an episode file: what made it (person or simulator), env id."""
    path = Path(path)
    name = path.name.removesuffix(".gz").removesuffix(".json")
    return path.with_name(name + ".meta.json")
