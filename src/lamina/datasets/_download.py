"""`get_file`: download once into a local cache, verify the checksum, resume, write atomically.

Files live in `~/.lamina/datasets` (Keras: `~/.keras/datasets`). `cache_dir=` moves the root
(`<cache_dir>/datasets/...`, as in Keras); the environment variable `LAMINA_DATA_DIR` names the
datasets folder itself (`$LAMINA_DATA_DIR/mnist.npz`). A download goes to `<file>.part`, resumes
from there with an HTTP Range request after an interruption, is checked against `file_hash`,
and only then renamed into place, so the cache never holds a truncated or corrupt file.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from typing import Any

from tqdm.auto import tqdm

_CHUNK_BYTES = 1 << 20
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
    datadir = cache_directory(cache_dir, cache_subdir)
    os.makedirs(datadir, exist_ok=True)

    provided_fname = fname is not None
    fname = os.fspath(fname) if fname is not None else os.path.basename(urllib.parse.urlsplit(origin).path)
    if not fname:
        raise ValueError(f"Cannot take a file name from origin {origin!r}; pass `fname`.")
    if os.sep in fname or (os.altsep and os.altsep in fname):
        raise ValueError(
            f"`fname` must be a file name, not a path. Received: fname={fname!r}; choose the "
            "folder with `cache_dir` or `cache_subdir`."
        )
    if extract and provided_fname and "." in fname:
        target = os.path.join(datadir, fname)
        extraction_dir = os.path.join(datadir, fname[: fname.find(".")] + "_extracted")
    elif extract:
        target = os.path.join(datadir, fname + "_archive")
        extraction_dir = os.path.join(datadir, fname)
    else:
        target, extraction_dir = os.path.join(datadir, fname), None

    if extraction_dir and not os.path.exists(target) and os.path.isdir(extraction_dir) and not force_download:
        # The archive was deleted (or the folder put there by hand): the extracted copy is the cache.
        return extraction_dir

    downloaded = False
    if force_download or not _is_valid(target, file_hash, hash_algorithm):
        _download_verified(origin, target, file_hash, hash_algorithm, timeout)
        downloaded = True
    if extraction_dir is None:
        return target
    if downloaded or not os.path.isdir(extraction_dir):
        try:
            _extract(target, extraction_dir, archive_format)
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
            _download_verified(origin, target, file_hash, hash_algorithm, timeout)
            _extract(target, extraction_dir, archive_format)
    return extraction_dir


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


def _is_valid(path: str, file_hash: str | None, algorithm: str) -> bool:
    if not os.path.isfile(path):
        return False
    if file_hash is None or hash_file(path, algorithm, file_hash) == file_hash.lower():
        return True
    print(
        f"The cached file {path!r} does not match its expected hash {file_hash} (incomplete or "
        "outdated); removing it and downloading it again.",
        file=sys.stderr,
    )
    os.remove(path)
    return False


def _download_verified(origin: str, target: str, file_hash: str | None, algorithm: str, timeout: float) -> None:
    """Download to `target + '.part'`, check the hash, then rename into place."""
    partial = target + ".part"
    # A second attempt starts from scratch: a bad hash after resuming may come from a stale part.
    for attempt in range(2):
        _fetch(origin, partial, target, file_hash, timeout, resume=attempt == 0)
        if file_hash is None or hash_file(partial, algorithm, file_hash) == file_hash.lower():
            os.replace(partial, target)
            return
        os.remove(partial)
        if attempt == 0:
            print(f"The download of {origin} does not match its hash; trying once more.", file=sys.stderr)
    raise ValueError(
        f"The file downloaded from {origin} does not match the expected hash {file_hash} "
        f"(twice), so it was discarded. The source may have changed or the transfer is being "
        f"altered; you can place a verified copy at {target!r}."
    )


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
            with open(partial, "ab" if offset else "wb") as file, tqdm(
                total=total, initial=offset, unit="B", unit_scale=True, desc=os.path.basename(target), disable=None
            ) as progress:
                for chunk in iter(lambda: response.read(_CHUNK_BYTES), b""):
                    file.write(chunk)
                    progress.update(len(chunk))
    except (urllib.error.URLError, OSError) as error:
        raise ConnectionError(_offline_message(origin, target, file_hash, error)) from error
    received = os.path.getsize(partial)
    if total is not None and received != total:
        raise ConnectionError(
            _offline_message(
                origin, target, file_hash, f"the connection closed after {received} of {total} bytes"
            )
        )


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


def _extract(archive: str, destination: str, archive_format: str | list[str] | None) -> None:
    """Extract into a temporary folder beside `destination`, then rename it into place."""
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
                    _extract_tar(tar, staging)
                break
            if name == "zip" and zipfile.is_zipfile(archive):
                with zipfile.ZipFile(archive) as zip_file:
                    _check_zip_members(zip_file, staging)
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


def _extract_tar(tar: tarfile.TarFile, root: str) -> None:
    # The 'data' filter refuses absolute paths, '..', links out of the folder and device
    # files, so an archive can only write inside `root`.
    if hasattr(tarfile, "data_filter"):
        tar.extractall(root, filter="data")
        return
    # Pythons before 3.10.12 / 3.11.4 lack the filter: check the same things by hand.
    real_root = os.path.realpath(root)
    for member in tar.getmembers():
        path = os.path.realpath(os.path.join(real_root, member.name))
        link_ok = True
        if member.issym() or member.islnk():
            base = os.path.dirname(path) if member.issym() else real_root
            link = os.path.realpath(os.path.join(base, member.linkname))
            link_ok = os.path.commonpath([link, real_root]) == real_root
        if os.path.commonpath([path, real_root]) != real_root or not link_ok or member.isdev():
            raise tarfile.ReadError(f"member {member.name!r} would be written outside the folder")
    tar.extractall(root)


def _check_zip_members(zip_file: zipfile.ZipFile, root: str) -> None:
    root = os.path.realpath(root)
    for member in zip_file.namelist():
        path = os.path.realpath(os.path.join(root, member))
        if os.path.commonpath([path, root]) != root:
            raise zipfile.BadZipFile(f"member {member!r} would be written outside the folder")
