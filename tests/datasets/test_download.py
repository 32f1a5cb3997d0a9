"""`get_file`: download, cache, checksum, resume, atomic writes, extraction, offline errors."""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import multiprocessing
import os
import stat
import tarfile
import zipfile

import pytest

from lamina.datasets import _download
from lamina.utils import get_file
from lamina.errors import UnsafeArchiveError

from . import _download_worker

PAYLOAD = bytes(range(256)) * 40  # 10 KiB, every byte value


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()


def read_text(path: str) -> str:
    with open(path) as file:
        return file.read()


def make_tar_gz(members: dict[str, bytes | tarfile.TarInfo]) -> bytes:
    """A tar.gz of files (bytes) and of links or devices (a TarInfo, written as given)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            if isinstance(data, tarfile.TarInfo):
                tar.addfile(data)
                continue
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def make_zip(members: dict[str, bytes], modes: dict[str, int] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if modes and name in modes:
                info.external_attr = modes[name] << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def tar_info(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


def files_under(folder) -> list[str]:
    return sorted(os.path.relpath(os.path.join(root, name), folder) for root, dirs, names in os.walk(folder) for name in dirs + names)


def test_downloads_into_the_cache_and_serves_the_second_call_from_it(file_server, tmp_path):
    file_server.files["data/file.bin"] = PAYLOAD
    path = get_file("file.bin", file_server.url("data/file.bin"), file_hash=sha256(PAYLOAD), cache_dir=tmp_path)
    assert path == os.path.join(tmp_path, "datasets", "file.bin")
    assert read_bytes(path) == PAYLOAD
    assert not os.path.exists(path + ".part")

    file_server.files.clear()  # a second download would now fail with 404
    again = get_file("file.bin", file_server.url("data/file.bin"), file_hash=sha256(PAYLOAD), cache_dir=tmp_path)
    assert again == path
    assert file_server.paths_requested() == ["/data/file.bin"]


def test_file_name_defaults_to_the_url_and_md5_hashes_work(file_server, tmp_path):
    file_server.files["words.json"] = b'{"a": 1}'
    path = get_file(origin=file_server.url("words.json"), file_hash=hashlib.md5(b'{"a": 1}').hexdigest(), cache_dir=tmp_path)
    assert os.path.basename(path) == "words.json"


def test_bad_checksum_of_a_download_is_retried_once_then_raises_and_leaves_nothing(file_server, tmp_path):
    file_server.files["f.bin"] = b"tampered"
    with pytest.raises(ValueError, match="does not match the expected hash"):
        get_file("f.bin", file_server.url("f.bin"), file_hash=sha256(PAYLOAD), cache_dir=tmp_path)
    assert os.listdir(tmp_path / "datasets") == []
    assert file_server.paths_requested() == ["/f.bin", "/f.bin"]


def test_a_corrupt_cached_file_is_removed_and_fetched_again(file_server, tmp_path, capsys):
    file_server.files["f.bin"] = PAYLOAD
    cached = tmp_path / "datasets" / "f.bin"
    cached.parent.mkdir()
    cached.write_bytes(PAYLOAD[:100])  # truncated by an earlier crash
    path = get_file("f.bin", file_server.url("f.bin"), file_hash=sha256(PAYLOAD), cache_dir=tmp_path)
    assert read_bytes(path) == PAYLOAD
    assert "does not match its expected hash" in capsys.readouterr().err


def test_an_interrupted_download_resumes_with_a_range_request(file_server, tmp_path):
    file_server.files["f.bin"] = PAYLOAD
    part = tmp_path / "datasets" / "f.bin.part"
    part.parent.mkdir()
    part.write_bytes(PAYLOAD[:4000])
    path = get_file("f.bin", file_server.url("f.bin"), file_hash=sha256(PAYLOAD), cache_dir=tmp_path)
    assert read_bytes(path) == PAYLOAD
    assert file_server.requests == [("/f.bin", "bytes=4000-")]


def test_a_server_that_ignores_range_restarts_the_download(file_server, tmp_path):
    file_server.files["f.bin"] = PAYLOAD
    file_server.ignore_range = True
    part = tmp_path / "datasets" / "f.bin.part"
    part.parent.mkdir()
    part.write_bytes(b"x" * 4000)
    path = get_file("f.bin", file_server.url("f.bin"), file_hash=sha256(PAYLOAD), cache_dir=tmp_path)
    assert read_bytes(path) == PAYLOAD


def test_a_stale_part_longer_than_the_file_starts_over(file_server, tmp_path):
    file_server.files["f.bin"] = PAYLOAD
    part = tmp_path / "datasets" / "f.bin.part"
    part.parent.mkdir()
    part.write_bytes(b"x" * (len(PAYLOAD) + 10))
    path = get_file("f.bin", file_server.url("f.bin"), file_hash=sha256(PAYLOAD), cache_dir=tmp_path)
    assert read_bytes(path) == PAYLOAD
    assert file_server.requests == [("/f.bin", f"bytes={len(PAYLOAD) + 10}-"), ("/f.bin", None)]


def test_a_resumed_download_with_a_bad_part_is_refetched_whole(file_server, tmp_path):
    file_server.files["f.bin"] = PAYLOAD
    part = tmp_path / "datasets" / "f.bin.part"
    part.parent.mkdir()
    part.write_bytes(b"garbage!")  # wrong bytes: the resumed file fails the hash
    path = get_file("f.bin", file_server.url("f.bin"), file_hash=sha256(PAYLOAD), cache_dir=tmp_path)
    assert read_bytes(path) == PAYLOAD
    assert file_server.requests == [("/f.bin", "bytes=8-"), ("/f.bin", None)]


def test_force_download_fetches_again(file_server, tmp_path):
    file_server.files["f.bin"] = PAYLOAD
    get_file("f.bin", file_server.url("f.bin"), cache_dir=tmp_path)
    get_file("f.bin", file_server.url("f.bin"), cache_dir=tmp_path, force_download=True)
    assert len(file_server.requests) == 2


def test_no_network_says_where_to_put_the_file(dead_url, tmp_path):
    expected = os.path.join(tmp_path, "datasets", "missing.npz")
    with pytest.raises(ConnectionError) as caught:
        get_file("missing.npz", dead_url, file_hash=sha256(PAYLOAD), cache_dir=tmp_path)
    message = str(caught.value)
    assert dead_url in message
    assert repr(expected) in message
    assert sha256(PAYLOAD) in message
    assert "LAMINA_DATA_DIR" in message


def test_http_errors_are_reported_with_the_cache_path(file_server, tmp_path):
    with pytest.raises(ConnectionError, match="404"):
        get_file("nothing.bin", file_server.url("nothing.bin"), cache_dir=tmp_path)


def test_lamina_data_dir_names_the_datasets_folder(file_server, tmp_path, monkeypatch):
    monkeypatch.setenv("LAMINA_DATA_DIR", str(tmp_path / "my-data"))
    file_server.files["f.bin"] = PAYLOAD
    path = get_file("f.bin", file_server.url("f.bin"))
    assert path == os.path.join(tmp_path, "my-data", "f.bin")
    nested = get_file("f.bin", file_server.url("f.bin"), cache_subdir=os.path.join("datasets", "sub"))
    assert nested == os.path.join(tmp_path, "my-data", "sub", "f.bin")


def test_default_cache_is_under_home_dot_lamina(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert _download.cache_directory(None) == os.path.join(tmp_path, ".lamina", "datasets")


def test_extracts_a_tar_gz_archive_atomically(file_server, tmp_path):
    archive = make_tar_gz({"top/a.txt": b"alpha", "top/b.txt": b"beta"})
    file_server.files["arch.tar.gz"] = archive
    folder = get_file("arch", file_server.url("arch.tar.gz"), extract=True, file_hash=sha256(archive), cache_dir=tmp_path)
    assert folder == os.path.join(tmp_path, "datasets", "arch")
    assert read_bytes(os.path.join(folder, "top", "a.txt")) == b"alpha"
    assert sorted(os.listdir(tmp_path / "datasets")) == ["arch", "arch_archive"]  # no staging left
    get_file("arch", file_server.url("arch.tar.gz"), extract=True, file_hash=sha256(archive), cache_dir=tmp_path)
    assert len(file_server.requests) == 1


def test_a_named_archive_extracts_into_name_extracted(file_server, tmp_path):
    archive = make_tar_gz({"a.txt": b"alpha"})
    file_server.files["arch.tar.gz"] = archive
    folder = get_file("arch.tar.gz", file_server.url("arch.tar.gz"), extract=True, cache_dir=tmp_path)
    assert folder == os.path.join(tmp_path, "datasets", "arch_extracted")
    assert os.path.isfile(os.path.join(tmp_path, "datasets", "arch.tar.gz"))


def test_a_corrupt_cached_archive_is_detected_by_hash_and_fetched_again(file_server, tmp_path):
    archive = make_tar_gz({"top/a.txt": b"alpha"})
    file_server.files["arch.tar.gz"] = archive
    folder = get_file("arch", file_server.url("arch.tar.gz"), extract=True, file_hash=sha256(archive), cache_dir=tmp_path)
    (tmp_path / "datasets" / "arch_archive").write_bytes(archive[: len(archive) // 2])
    os.remove(os.path.join(folder, "top", "a.txt"))
    folder = get_file("arch", file_server.url("arch.tar.gz"), extract=True, file_hash=sha256(archive), cache_dir=tmp_path)
    assert read_bytes(os.path.join(folder, "top", "a.txt")) == b"alpha"
    assert len(file_server.requests) == 2


def test_an_unhashed_corrupt_cached_archive_is_detected_on_extraction_and_fetched_again(file_server, tmp_path, capsys):
    archive = make_tar_gz({"a.txt": b"alpha"})
    file_server.files["arch.tar.gz"] = archive
    cached = tmp_path / "datasets" / "arch_archive"
    cached.parent.mkdir()
    cached.write_bytes(archive[: len(archive) // 2])
    folder = get_file("arch", file_server.url("arch.tar.gz"), extract=True, cache_dir=tmp_path)
    assert read_bytes(os.path.join(folder, "a.txt")) == b"alpha"
    assert "is corrupt" in capsys.readouterr().err


def test_a_download_that_is_not_an_archive_raises_and_is_removed(file_server, tmp_path):
    file_server.files["arch.tar.gz"] = b"this is not an archive"
    with pytest.raises(ValueError, match="not a readable"):
        get_file("arch", file_server.url("arch.tar.gz"), extract=True, cache_dir=tmp_path)
    assert os.listdir(tmp_path / "datasets") == []


def test_an_extracted_folder_without_its_archive_is_used_offline(dead_url, tmp_path):
    (tmp_path / "datasets" / "arch").mkdir(parents=True)
    assert get_file("arch", dead_url, extract=True, cache_dir=tmp_path) == os.path.join(tmp_path, "datasets", "arch")


def test_extracts_zip_archives(file_server, tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("z/a.txt", "zed")
    file_server.files["arch.zip"] = buffer.getvalue()
    folder = get_file("arch", file_server.url("arch.zip"), extract=True, cache_dir=tmp_path)
    assert read_text(os.path.join(folder, "z", "a.txt")) == "zed"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"fname": "f.bin"}, "`origin` must be the URL"),
        ({"fname": "a/b.bin", "origin": "http://127.0.0.1/b.bin"}, "not a path"),
        ({"origin": "http://127.0.0.1/"}, "Cannot take a file name"),
        ({"fname": "f", "origin": "http://127.0.0.1/f", "hash_algorithm": "sha1"}, "`hash_algorithm` must be"),
    ],
)
def test_bad_arguments(kwargs, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        get_file(cache_dir=tmp_path, **kwargs)


# --------------------------------------------------------------------------- file names


@pytest.mark.parametrize(
    "fname, message",
    [
        ("..", "must be a file name, not a path"),
        (".", "must be a file name, not a path"),
        ("../evil.bin", "must be a file name, not a path"),
        ("sub/../../evil.bin", "must be a file name, not a path"),
        ("a\0b", "must not contain a NUL character"),
    ],
)
def test_a_file_name_that_is_a_path_is_refused_before_anything_is_written(file_server, tmp_path, fname, message):
    file_server.files["f.bin"] = PAYLOAD
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match=message) as caught:
        get_file(fname, file_server.url("f.bin"), cache_dir=cache)
    assert repr(fname) in str(caught.value) and "cache_dir" in str(caught.value) or "NUL" in message
    assert file_server.requests == []
    assert files_under(tmp_path) == []


def test_an_absolute_file_name_is_refused(file_server, tmp_path):
    file_server.files["f.bin"] = PAYLOAD
    outside = tmp_path / "outside.bin"
    with pytest.raises(ValueError, match="not a path.*pass a plain name"):
        get_file(str(outside), file_server.url("f.bin"), cache_dir=tmp_path / "cache")
    assert files_under(tmp_path) == []


def test_a_name_taken_from_the_url_is_checked_too(file_server, tmp_path):
    with pytest.raises(ValueError, match="the name '..' taken from origin"):
        get_file(origin=file_server.url("data/.."), cache_dir=tmp_path)


# --------------------------------------------------------------------------- truncated transfers


def test_a_chunked_transfer_cut_short_raises_and_the_next_call_resumes(file_server, tmp_path):
    file_server.files["f.bin"] = PAYLOAD
    file_server.framing, file_server.cut_after = "chunked", 3000  # no Content-Length, no hash
    with pytest.raises(ConnectionError, match="before the end of the chunked transfer"):
        get_file("f.bin", file_server.url("f.bin"), cache_dir=tmp_path)
    folder = tmp_path / "datasets"
    assert os.listdir(folder) == ["f.bin.part"]  # not cached as complete; no lock or stray part
    assert read_bytes(folder / "f.bin.part") == PAYLOAD[:3000]

    file_server.cut_after = None  # the server behaves again
    path = get_file("f.bin", file_server.url("f.bin"), cache_dir=tmp_path)
    assert read_bytes(path) == PAYLOAD
    assert file_server.requests == [("/f.bin", None), ("/f.bin", "bytes=3000-")]
    assert os.listdir(folder) == ["f.bin"]


def test_a_transfer_shorter_than_its_content_length_raises_and_keeps_the_part(file_server, tmp_path):
    file_server.files["f.bin"] = PAYLOAD
    file_server.cut_after = 5000
    with pytest.raises(ConnectionError, match=f"closed after 5000 of {len(PAYLOAD)} bytes"):
        get_file("f.bin", file_server.url("f.bin"), cache_dir=tmp_path)
    assert os.listdir(tmp_path / "datasets") == ["f.bin.part"]


def test_a_close_delimited_cut_is_caught_by_the_hash(file_server, tmp_path, capsys):
    file_server.files["f.bin"] = PAYLOAD
    file_server.framing, file_server.cut_after = "close", 5000
    with pytest.raises(ValueError, match="does not match the expected hash"):
        get_file("f.bin", file_server.url("f.bin"), file_hash=sha256(PAYLOAD), cache_dir=tmp_path)
    assert os.listdir(tmp_path / "datasets") == []
    file_server.cut_after = None
    path = get_file("f.bin", file_server.url("f.bin"), file_hash=sha256(PAYLOAD), cache_dir=tmp_path)
    assert read_bytes(path) == PAYLOAD


def test_a_close_delimited_download_without_hash_warns_that_it_cannot_be_checked(file_server, tmp_path, capsys):
    file_server.files["f.bin"] = PAYLOAD
    file_server.framing = "close"
    path = get_file("f.bin", file_server.url("f.bin"), cache_dir=tmp_path)
    assert read_bytes(path) == PAYLOAD
    assert "a truncated transfer cannot be detected; pass file_hash" in capsys.readouterr().err


def test_a_part_left_by_a_dead_process_is_resumed(file_server, tmp_path):
    file_server.files["f.bin"] = PAYLOAD
    folder = tmp_path / "datasets"
    folder.mkdir()
    (folder / "f.bin.part-4242-0123abcd").write_bytes(PAYLOAD[:6000])  # killed mid-download
    (folder / "f.bin.part-4243-0123abcd").write_bytes(PAYLOAD[:10])
    path = get_file("f.bin", file_server.url("f.bin"), file_hash=sha256(PAYLOAD), cache_dir=tmp_path)
    assert read_bytes(path) == PAYLOAD
    assert file_server.requests == [("/f.bin", "bytes=6000-")]
    assert os.listdir(folder) == ["f.bin"]


# --------------------------------------------------------------------------- two processes


def test_two_processes_fetching_one_file_download_it_once(file_server, tmp_path):
    file_server.files["shared.bin"] = PAYLOAD
    file_server.delay = 1.0  # the first download is still running when the second process asks
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    workers = [
        context.Process(
            target=_download_worker.fetch,
            args=(_download.__file__, file_server.url("shared.bin"), str(tmp_path), None, barrier, results),
        )
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    assert outcomes == [("ok", sha256(PAYLOAD))] * 2
    assert file_server.requests == [("/shared.bin", None)]
    assert os.listdir(tmp_path / "datasets") == ["shared.bin"]  # no part, no lock file


def test_threads_fetching_one_file_wait_for_each_other(file_server, tmp_path, capsys):
    # flock excludes open file descriptions, so threads of one process queue up as processes do.
    file_server.files["f.bin"] = PAYLOAD
    file_server.delay = 0.3
    url = file_server.url("f.bin")
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        paths = list(pool.map(lambda _: get_file("f.bin", url, file_hash=sha256(PAYLOAD), cache_dir=tmp_path), range(3)))
    assert [read_bytes(path) for path in paths] == [PAYLOAD] * 3
    assert file_server.requests == [("/f.bin", None)]
    assert "Waiting for another process to finish" in capsys.readouterr().err
    assert os.listdir(tmp_path / "datasets") == ["f.bin"]


def test_without_the_lock_part_files_of_others_are_left_alone(file_server, tmp_path, monkeypatch):
    monkeypatch.setattr(_download, "fcntl", None)  # as on Windows: the other process may be alive
    file_server.files["f.bin"] = PAYLOAD
    folder = tmp_path / "datasets"
    folder.mkdir()
    (folder / "f.bin.part-4242-0123abcd").write_bytes(PAYLOAD[:6000])
    get_file("f.bin", file_server.url("f.bin"), cache_dir=tmp_path)
    assert file_server.requests == [("/f.bin", None)]
    assert sorted(os.listdir(folder)) == ["f.bin", "f.bin.part-4242-0123abcd"]


# --------------------------------------------------------------------------- hostile archives


def serve_archive(file_server, name: str, data: bytes) -> str:
    file_server.files[name] = data
    return file_server.url(name)


@pytest.mark.parametrize(
    "members, message",
    [
        ({"../../escaped.txt": b"gotcha"}, "would be written outside"),
        ({"ok/../../escaped.txt": b"gotcha"}, "would be written outside"),
        ({"/tmp/lamina-absolute-escape.txt": b"gotcha"}, "would be written outside"),
        ({"link": tar_info("link", tarfile.SYMTYPE, "../../..")}, "points outside"),
        ({"link": tar_info("link", tarfile.SYMTYPE, "/etc")}, "points outside"),
        ({"hard": tar_info("hard", tarfile.LNKTYPE, "../escaped.txt")}, "points outside"),
        ({"dev": tar_info("dev", tarfile.CHRTYPE)}, "a device, pipe or sparse file"),
        ({"fifo": tar_info("fifo", tarfile.FIFOTYPE)}, "a device, pipe or sparse file"),
    ],
    ids=["dotdot", "inner-dotdot", "absolute", "symlink-out", "symlink-absolute", "hardlink-out", "device", "fifo"],
)
@pytest.mark.parametrize("without_data_filter", [False, True], ids=["data-filter", "manual-check"])
def test_a_tar_cannot_write_outside_its_folder(file_server, tmp_path, monkeypatch, members, message, without_data_filter):
    if without_data_filter:
        monkeypatch.delattr(tarfile, "data_filter")
    cache = tmp_path / "deep" / "cache"
    url = serve_archive(file_server, "evil.tar.gz", make_tar_gz({"fine.txt": b"x", **members}))
    with pytest.raises(UnsafeArchiveError, match=message):
        get_file("evil", url, extract=True, cache_dir=cache)
    assert files_under(tmp_path) == ["deep", "deep/cache", "deep/cache/datasets", "deep/cache/datasets/evil_archive"]
    assert not os.path.exists("/tmp/lamina-absolute-escape.txt")


def test_links_that_stay_inside_the_folder_are_extracted(file_server, tmp_path):
    url = serve_archive(
        file_server, "ok.tar.gz",
        make_tar_gz({"data/a.txt": b"alpha", "alias": tar_info("alias", tarfile.SYMTYPE, "data/a.txt")}),
    )
    folder = get_file("ok", url, extract=True, cache_dir=tmp_path)
    assert read_bytes(os.path.join(folder, "alias")) == b"alpha"


@pytest.mark.parametrize(
    "members, modes, message",
    [
        ({"../escaped.txt": b"gotcha"}, None, "would be written outside"),
        ({"/abs.txt": b"gotcha"}, None, "would be written outside"),
        ({"C:/abs.txt": b"gotcha"}, None, "would be written outside"),
        ({"link": b"../../etc/passwd"}, {"link": stat.S_IFLNK | 0o777}, "a link or special file"),
    ],
    ids=["dotdot", "absolute", "drive", "symlink"],
)
def test_a_zip_cannot_write_outside_its_folder(file_server, tmp_path, members, modes, message):
    url = serve_archive(file_server, "evil.zip", make_zip(members, modes))
    with pytest.raises(UnsafeArchiveError, match=message):
        get_file("evil", url, extract=True, cache_dir=tmp_path / "cache")
    assert files_under(tmp_path / "cache" / "datasets") == ["evil_archive"]
    assert files_under(tmp_path) == ["cache", "cache/datasets", "cache/datasets/evil_archive"]


BOMB = b"\0" * (8 << 20)  # 8 MiB of zeros: compresses about 1000x


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_a_decompression_bomb_is_refused_before_extraction(file_server, tmp_path, monkeypatch, kind):
    # The floor is lowered so a small bomb stands in for a large one; the ratio is the real one.
    monkeypatch.setattr(_download, "MIN_EXPANSION_BYTES", 1 << 20)
    archive = make_tar_gz({"zeros.bin": BOMB}) if kind == "tar" else make_zip({"zeros.bin": BOMB})
    assert len(BOMB) > _download.MAX_EXPANSION * len(archive)
    url = serve_archive(file_server, f"bomb.{kind}", archive)
    with pytest.raises(UnsafeArchiveError, match="decompression bomb.*unpack it yourself into"):
        get_file("bomb", url, extract=True, cache_dir=tmp_path)
    assert files_under(tmp_path / "datasets") == ["bomb_archive"]


def test_an_archive_with_too_many_members_is_refused(file_server, tmp_path, monkeypatch):
    monkeypatch.setattr(_download, "MAX_MEMBERS", 10)
    url = serve_archive(file_server, "many.tar.gz", make_tar_gz({f"f{i}": b"" for i in range(11)}))
    with pytest.raises(UnsafeArchiveError, match="more than 10 members"):
        get_file("many", url, extract=True, cache_dir=tmp_path)
    ten = serve_archive(file_server, "ten.tar.gz", make_tar_gz({f"f{i}": b"" for i in range(10)}))
    assert len(os.listdir(get_file("ten", ten, extract=True, cache_dir=tmp_path))) == 10
