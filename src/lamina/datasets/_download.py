"""`get_file`: download once into a local cache, verify the checksum, resume, write atomically.

Files live in `~/.lamina/datasets` (Keras: `~/.keras/datasets`). `cache_dir=` moves the root
(`<cache_dir>/datasets/...`, as in Keras); the environment variable `LAMINA_DATA_DIR` names the
datasets folder itself (`$LAMINA_DATA_DIR/mnist.npz`). A download goes to a part file of the
process's own, is checked against `file_hash` and its announced length, and only then renamed
into place, so the cache never holds a truncated or corrupt file. After a network failure the
bytes received are kept as `<file>.part` and resumed with an HTTP Range request. An `flock` on
`<file>.lock` lets one process at a time fetch (and extract) a file; the others wait and then
find it in the cache. Archives are checked before extraction (no member outside the folder, no
links out of it, no devices, bounded size and member count).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import os
import posixpath
import re
import secrets
import shutil
import stat
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from typing import Any, Iterator

from tqdm.auto import tqdm

from lamina.errors import UnsafeArchiveError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock, per-process part files only
    fcntl = None

_CHUNK_BYTES = 1 << 20
# Extraction limits. Real data archives unpack to a few times their size (text ~8x); a
# decompression bomb reaches ~1000x. The floor lets small archives of zeros through.
MAX_EXPANSION = 100
MIN_EXPANSION_BYTES = 1 << 30
MAX_MEMBERS = 250_000
_ARCHIVE_ERRORS = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, gzip.BadGzipFile)


def get_file(
    fname: str | None = None,
    origin: str | None = None,
    untar: bool = False,
    md5_hash: str | None = None,
    file_hash: str | None = None,
    cache_subdir: str = "datasets",
    hash_algorithm: str = "auto",
    extract: bool = False,
    archive_format: str | list[str] | None = "auto",
    cache_dir: str | os.PathLike | None = None,
    force_download: bool = False,
    *,
    timeout: float = 60.0,
) -> str:
    """Download `origin` into the cache unless a valid copy is there; return its local path.

    Args:
        fname: the file's name in the cache (the URL's last path component when None). With
            `extract`, a name without an extension names the extraction folder.
        origin: the URL.
        untar: deprecated form of `extract=True, archive_format='tar'`.
        md5_hash: deprecated form of `file_hash` with `hash_algorithm='md5'`.
        file_hash: the expected sha256 (64 hex digits) or md5 (32) of the file. A cached copy
            that does not match is removed and downloaded again; a fresh download that does not
            match twice raises.
        cache_subdir: the folder under the cache root (an absolute path is used as is).
        hash_algorithm: 'sha256', 'md5', or 'auto' (by the hash's length).
        extract: extract the archive (tar, tar.gz, tar.bz2, zip) and return the folder.
        archive_format: 'auto' (tar then zip), 'tar', 'zip', or a list of them.
        cache_dir: the cache root; `~/.lamina` by default.
        force_download: download even when a valid copy is cached.
        timeout: seconds to wait on the network before giving up (keyword-only).

    Raises:
        ConnectionError: the file is not cached and cannot be downloaded; the message names the
            path to place the file at by hand.
        ValueError: the downloaded file does not match `file_hash`.
    """
    if not origin or not isinstance(origin, str):
        raise ValueError(f"`origin` must be the URL of the file to download. Received: origin={origin!r}.")
    if md5_hash is not None and file_hash is None:
        file_hash, hash_algorithm = md5_hash, "md5"
    if hash_algorithm not in ("auto", "sha256", "md5"):
        raise ValueError(
            f"`hash_algorithm` must be 'auto', 'sha256' or 'md5'. Received: hash_algorithm={hash_algorithm!r}."
        )
    if untar:
        extract, archive_format = True, "tar"
    provided_fname = fname is not None
    fname = os.fspath(fname) if fname is not None else os.path.basename(urllib.parse.urlsplit(origin).path)
    _check_fname(fname, origin, provided_fname)
    datadir = cache_directory(cache_dir, cache_subdir)
    os.makedirs(datadir, exist_ok=True)

    if extract and provided_fname and "." in fname:
        target = os.path.join(datadir, fname)
        extraction_dir = os.path.join(datadir, fname[: fname.find(".")] + "_extracted")
    elif extract:
        target = os.path.join(datadir, fname + "_archive")
        extraction_dir = os.path.join(datadir, fname)
    else:
        target, extraction_dir = os.path.join(datadir, fname), None

    if not force_download:
        if extraction_dir and not os.path.exists(target) and os.path.isdir(extraction_dir):
            # The archive was deleted (or the folder put there by hand): the extracted copy is the cache.
            return extraction_dir
        # Files only ever appear by an atomic rename, so a present, matching file is complete
        # and needs no lock (which also serves read-only caches).
        if (extraction_dir is None or os.path.isdir(extraction_dir)) and _matches(target, file_hash, hash_algorithm):
            return extraction_dir or target
    with _exclusive(target) as locked:
        # Another process may have finished the download while this one waited for the lock.
        return _get_locked(
            origin, target, extraction_dir, file_hash, hash_algorithm, archive_format, force_download, timeout, locked
        )


def _get_locked(
    origin: str,
    target: str,
    extraction_dir: str | None,
    file_hash: str | None,
    hash_algorithm: str,
    archive_format: str | list[str] | None,
    force_download: bool,
    timeout: float,
    locked: bool,
) -> str:
    downloaded = False
    if force_download or not _is_valid(target, file_hash, hash_algorithm):
        _download_verified(origin, target, file_hash, hash_algorithm, timeout, locked)
        downloaded = True
    if extraction_dir is None:
        return target
    if downloaded or not os.path.isdir(extraction_dir):
        try:
            _extract(target, extraction_dir, archive_format)
        except UnsafeArchiveError:
            raise  # the archive is kept (it is harmless unextracted); the message says what to do
        except _ARCHIVE_ERRORS as error:
            if downloaded or file_hash is not None:
                os.remove(target)
                raise ValueError(
                    f"{target!r} is not a readable {archive_format} archive ({error}); it was "
                    f"removed. Check that {origin} serves an archive."
                ) from error
            # An unverifiable cached archive that does not open was truncated or corrupted
            # earlier: fetch it again once.
            print(f"The cached archive {target!r} is corrupt ({error}); downloading it again.", file=sys.stderr)
            os.remove(target)
            _download_verified(origin, target, file_hash, hash_algorithm, timeout, locked)
            _extract(target, extraction_dir, archive_format)
    return extraction_dir


def _check_fname(fname: str, origin: str, provided: bool) -> None:
    if not fname:
        raise ValueError(f"Cannot take a file name from origin {origin!r}; pass `fname`.")
    source = f"fname={fname!r}" if provided else f"the name {fname!r} taken from origin {origin!r}"
    if "\0" in fname:
        raise ValueError(f"`fname` must not contain a NUL character. Received: {source}; pass a plain file name.")
    separators = [os.sep] + ([os.altsep] if os.altsep else [])
    if any(separator in fname for separator in separators) or fname in (".", ".."):
        raise ValueError(
            f"`fname` must be a file name, not a path. Received: {source}; pass a plain name such "
            "as 'data.npz' and choose the folder with `cache_dir` or `cache_subdir`."
        )


def cache_directory(cache_dir: str | os.PathLike | None, cache_subdir: str = "datasets") -> str:
    """The folder `get_file` keeps files of `cache_subdir` in (see the module docstring)."""
    if cache_dir is None:
        data_dir = os.environ.get("LAMINA_DATA_DIR")
        if data_dir:
            parts = os.path.normpath(cache_subdir).split(os.sep)
            inside = parts[1:] if parts[0] == "datasets" else parts
            return os.path.join(os.path.expanduser(data_dir), *inside)
        cache_dir = os.path.join("~", ".lamina")
    return os.path.join(os.path.expanduser(os.fspath(cache_dir)), cache_subdir)


def hash_file(path: str, algorithm: str = "sha256", file_hash: str | None = None) -> str:
    """The hex digest of a file; 'auto' picks sha256 for a 64-digit `file_hash`, else md5."""
    if algorithm == "auto":
        algorithm = "sha256" if file_hash is None or len(file_hash) == 64 else "md5"
    hasher = hashlib.sha256() if algorithm == "sha256" else hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(_CHUNK_BYTES), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def _matches(path: str, file_hash: str | None, algorithm: str) -> bool:
    if not os.path.isfile(path):
        return False
    return file_hash is None or hash_file(path, algorithm, file_hash) == file_hash.lower()


def _is_valid(path: str, file_hash: str | None, algorithm: str) -> bool:
    """Whether `path` is a usable cached copy; a mismatching one is removed (call under the lock)."""
    if _matches(path, file_hash, algorithm):
        return True
    if not os.path.isfile(path):
        return False
    print(
        f"The cached file {path!r} does not match its expected hash {file_hash} (incomplete or "
        "outdated); removing it and downloading it again.",
        file=sys.stderr,
    )
    os.remove(path)
    return False


@contextlib.contextmanager
def _exclusive(target: str) -> Iterator[bool]:
    """Hold an exclusive `flock` on `<target>.lock` (one fetcher at a time); yield whether it is held."""
    path = target + ".lock"
    try:
        handle = _acquire(path, target)
    except OSError:
        # No locking here (a read-only folder, a file system without flock): per-process part
        # names still keep concurrent downloads from corrupting each other.
        handle = None
    try:
        yield handle is not None
    finally:
        if handle is not None:
            # Removed while still held: a waiter that then gets the lock on the removed file
            # sees that it is stale (`_acquire`) and locks the current one instead.
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
            os.close(handle)


def _acquire(path: str, target: str) -> int | None:
    if fcntl is None:
        return None
    while True:
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                print(f"Waiting for another process to finish {target!r}.", file=sys.stderr)
                fcntl.flock(handle, fcntl.LOCK_EX)
            if os.path.samestat(os.fstat(handle), os.stat(path)):
                return handle
        except FileNotFoundError:
            pass
        except BaseException:
            os.close(handle)
            raise
        os.close(handle)


def _download_verified(
    origin: str, target: str, file_hash: str | None, algorithm: str, timeout: float, locked: bool
) -> None:
    """Download into a part file of this process's own, check the hash, then rename into place.

    `<target>.part` is the resumable remainder of an earlier failed attempt: it is claimed by
    renaming it to this process's name (atomic, so two claimants cannot share it), and an
    attempt that fails for a network reason hands its bytes back under that name.
    """
    shared = target + ".part"
    own = f"{target}.part-{os.getpid()}-{secrets.token_hex(4)}"
    if locked:
        _adopt_orphans(target, shared)
    with contextlib.suppress(FileNotFoundError):
        os.replace(shared, own)
    try:
        # A second attempt starts from scratch: a bad hash after resuming may come from a stale part.
        for attempt in range(2):
            _fetch(origin, own, target, file_hash, timeout, resume=attempt == 0)
            if file_hash is None or hash_file(own, algorithm, file_hash) == file_hash.lower():
                os.replace(own, target)
                return
            os.remove(own)
            if attempt == 0:
                print(f"The download of {origin} does not match its hash; trying once more.", file=sys.stderr)
        raise ValueError(
            f"The file downloaded from {origin} does not match the expected hash {file_hash} "
            f"(twice), so it was discarded. The source may have changed or the transfer is being "
            f"altered; you can place a verified copy at {target!r}."
        )
    finally:
        # Whatever is left is a prefix of the server's file (a wrong hash removed it above):
        # hand it back for the next call to resume.
        if os.path.exists(own):
            if os.path.getsize(own):
                os.replace(own, shared)
            else:
                os.remove(own)


def _adopt_orphans(target: str, shared: str) -> None:
    """Under the lock, part files of other processes belong to ones that died: keep the longest."""
    folder, prefix = os.path.split(target + ".part-")
    orphans = [os.path.join(folder, name) for name in os.listdir(folder) if name.startswith(prefix)]
    if not orphans:
        return
    if not os.path.exists(shared):
        longest = max(orphans, key=os.path.getsize)
        os.replace(longest, shared)
        orphans.remove(longest)
    for orphan in orphans:
        os.remove(orphan)


def _fetch(origin: str, partial: str, target: str, file_hash: str | None, timeout: float, resume: bool) -> None:
    offset = os.path.getsize(partial) if resume and os.path.exists(partial) else 0
    request = urllib.request.Request(origin, headers={"User-Agent": "lamina"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    print(f"Downloading data from {origin}", file=sys.stderr)
    try:
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as error:
            if error.code != 416 or not offset:
                raise
            # 416: the part file is as long as (or longer than) the file; start over.
            offset = 0
            request.remove_header("Range")
            response = urllib.request.urlopen(request, timeout=timeout)
        with response:
            if offset and not (response.status == 206 and _range_start(response) == offset):
                offset = 0  # the server ignored the Range request and sends the whole file
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length is not None else None
            if total is None and not getattr(response, "chunked", False) and file_hash is None:
                # Only the closing connection marks the end: a cut that looks like an orderly
                # close cannot be told from the end of the file.
                print(
                    f"{origin} sends neither a length nor chunked encoding and no file_hash was "
                    "given, so a truncated transfer cannot be detected; pass file_hash.",
                    file=sys.stderr,
                )
            with open(partial, "ab" if offset else "wb") as file, tqdm(
                total=total, initial=offset, unit="B", unit_scale=True, desc=os.path.basename(target), disable=None
            ) as progress:
                # http.client raises IncompleteRead when a chunked body ends before its final
                # zero-length chunk, so such a cut is never taken for the end of the file.
                try:
                    for chunk in iter(lambda: response.read(_CHUNK_BYTES), b""):
                        file.write(chunk)
                        progress.update(len(chunk))
                except http.client.IncompleteRead as error:
                    file.write(error.partial)  # complete chunks: a valid prefix to resume from
                    raise
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as error:
        raise ConnectionError(_offline_message(origin, target, file_hash, _describe(error))) from error
    received = os.path.getsize(partial)
    if total is not None and received != total:
        raise ConnectionError(
            _offline_message(
                origin, target, file_hash, f"the connection closed after {received} of {total} bytes"
            )
        )


def _describe(error: BaseException) -> str:
    if isinstance(error, http.client.IncompleteRead):
        return "the connection closed before the end of the chunked transfer"
    return str(error) or type(error).__name__


def _range_start(response: Any) -> int | None:
    content_range = response.headers.get("Content-Range", "")  # "bytes 100-199/200"
    try:
        return int(content_range.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _offline_message(origin: str, target: str, file_hash: str | None, reason: Any) -> str:
    check = f" Its {'sha256' if file_hash and len(file_hash) == 64 else 'md5'} hash must be {file_hash}." if file_hash else ""
    return (
        f"Could not download {origin} ({reason}). If this machine has no network access, "
        f"download the file elsewhere and copy it to {target!r}.{check} Or point the "
        "LAMINA_DATA_DIR environment variable (or cache_dir=) at a folder that already holds "
        "it. A partial download, if any, is kept and resumed on the next call."
    )


def check_expansion(archive: str, unpacked_bytes: int, members: int = 0, destination: str | None = None) -> None:
    """Refuse an archive that unpacks to over `MAX_EXPANSION` times its size (beyond the floor) or has too many members."""
    allowed = max(MAX_EXPANSION * os.path.getsize(archive), MIN_EXPANSION_BYTES)
    fix = f"If you trust it, unpack it yourself{f' into {destination!r}' if destination else ''}."
    if unpacked_bytes > allowed:
        raise UnsafeArchiveError(
            f"{archive!r} would unpack to more than {unpacked_bytes} bytes, over {MAX_EXPANSION} "
            f"times its size (at most {allowed} bytes): a decompression bomb or a corrupt archive. {fix}"
        )
    if members > MAX_MEMBERS:
        raise UnsafeArchiveError(f"{archive!r} holds more than {MAX_MEMBERS} members. {fix}")


def _extract(archive: str, destination: str, archive_format: str | list[str] | None) -> None:
    """Check every member, extract into a temporary folder beside `destination`, then rename it into place."""
    if archive_format is None:
        raise ValueError("`archive_format` is None, so nothing can be extracted; pass 'auto'.")
    formats = ["tar", "zip"] if archive_format == "auto" else [archive_format] if isinstance(archive_format, str) else list(archive_format)
    unknown = [name for name in formats if name not in ("tar", "zip")]
    if unknown:
        raise ValueError(f"`archive_format` must be 'auto', 'tar', 'zip' or a list of them. Received: {unknown}.")
    staging = tempfile.mkdtemp(prefix=".extracting-", dir=os.path.dirname(destination))
    try:
        for name in formats:
            if name == "tar" and tarfile.is_tarfile(archive):
                with tarfile.open(archive) as tar:
                    _extract_tar(tar, archive, staging, destination)
                break
            if name == "zip" and zipfile.is_zipfile(archive):
                with zipfile.ZipFile(archive) as zip_file:
                    _check_zip_members(zip_file, archive, destination)
                    zip_file.extractall(staging)
                break
        else:
            raise tarfile.ReadError(f"not a {' or '.join(formats)} archive")
        if os.path.isdir(destination):
            shutil.rmtree(destination)
        os.replace(staging, destination)
    finally:
        if os.path.isdir(staging):
            shutil.rmtree(staging)


def _check_member_name(name: str, archive: str, destination: str) -> None:
    parts = re.split(r"[/\\]", name)
    if not name or name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name) or ".." in parts or "\0" in name:
        raise UnsafeArchiveError(
            f"{archive!r} holds the member {name!r}, which would be written outside {destination!r} "
            "(an absolute path or '..'). The archive is unsafe to extract; check where it comes from."
        )


def _extract_tar(tar: tarfile.TarFile, archive: str, root: str, destination: str) -> None:
    # Members are read one header at a time so a bomb of headers is stopped at the cap, not
    # after it has filled memory.
    members, unpacked = [], 0
    for member in tar:
        _check_member_name(member.name, archive, destination)
        if member.issym() or member.islnk():
            base = posixpath.dirname(member.name) if member.issym() else ""
            resolved = posixpath.normpath(posixpath.join(base, member.linkname))
            if member.linkname.startswith("/") or resolved == ".." or resolved.startswith("../"):
                raise UnsafeArchiveError(
                    f"{archive!r} holds the link {member.name!r} -> {member.linkname!r}, which points "
                    f"outside {destination!r}. The archive is unsafe to extract; check where it comes from."
                )
        elif not (member.isfile() or member.isdir()) or member.sparse is not None:
            raise UnsafeArchiveError(
                f"{archive!r} holds {member.name!r}, a device, pipe or sparse file; dataset archives "
                "hold only files, folders and links. Check where it comes from."
            )
        members.append(member)
        unpacked += member.size if member.isfile() else 0
        check_expansion(archive, unpacked, len(members), destination)
    if hasattr(tarfile, "data_filter"):
        # The 'data' filter checks the same again against the real file system (links followed).
        try:
            tar.extractall(root, members=members, filter="data")
        except tarfile.FilterError as error:
            raise UnsafeArchiveError(f"{archive!r} is unsafe to extract ({error}); check where it comes from.") from None
        return
    # Pythons before 3.10.12 / 3.11.4 lack the filter: check resolved paths by hand.
    real_root = os.path.realpath(root)
    for member in members:
        path = os.path.realpath(os.path.join(real_root, member.name))
        link_ok = True
        if member.issym() or member.islnk():
            base = os.path.dirname(path) if member.issym() else real_root
            link = os.path.realpath(os.path.join(base, member.linkname))
            link_ok = os.path.commonpath([link, real_root]) == real_root
        if os.path.commonpath([path, real_root]) != real_root or not link_ok:
            raise UnsafeArchiveError(
                f"{archive!r}: the member {member.name!r} would be written outside {destination!r}. "
                "The archive is unsafe to extract; check where it comes from."
            )
    tar.extractall(root, members=members)


def _check_zip_members(zip_file: zipfile.ZipFile, archive: str, destination: str) -> None:
    infos = zip_file.infolist()
    for info in infos:
        _check_member_name(info.filename, archive, destination)
        kind = stat.S_IFMT(info.external_attr >> 16)
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise UnsafeArchiveError(
                f"{archive!r} holds {info.filename!r}, a link or special file; dataset archives hold "
                "only files and folders. Check where it comes from."
            )
    check_expansion(archive, sum(info.file_size for info in infos), len(infos), destination)
