"""`get_file`: download, cache, checksum, resume, atomic writes, extraction, offline errors."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import zipfile

import pytest

from lamina.datasets import _download
from lamina.utils import get_file

PAYLOAD = bytes(range(256)) * 40  # 10 KiB, every byte value


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()


def read_text(path: str) -> str:
    with open(path) as file:
        return file.read()


def make_tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


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


@pytest.mark.parametrize("without_data_filter", [False, True], ids=["data-filter", "manual-check"])
def test_archives_cannot_write_outside_their_folder(file_server, tmp_path, monkeypatch, without_data_filter):
    if without_data_filter:
        monkeypatch.delattr(tarfile, "data_filter")
    file_server.files["evil.tar.gz"] = make_tar_gz({"../../escaped.txt": b"gotcha"})
    with pytest.raises(ValueError, match="not a readable"):
        get_file("evil", file_server.url("evil.tar.gz"), extract=True, cache_dir=tmp_path)
    assert not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path.parent / "escaped.txt").exists()


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
