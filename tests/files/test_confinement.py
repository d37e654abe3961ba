"""The file manager against the real kernel: every hostile path and archive class.

Each test builds the attack on disk (links to a "host" directory outside the server root,
which stands for the host filesystem) and checks both the refusal and that the host side
is untouched: the test fails if an operation reached outside.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest
from stellar_agent.filesystem import FileError, Root, archives, confine, ops


@pytest.fixture(params=["openat2", "walk"])
def resolver(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs with openat2 (when the kernel has it) and with the component walk."""
    if request.param == "openat2" and not confine.openat2_available():
        pytest.skip("kernel without openat2")
    monkeypatch.setattr(confine, "_openat2_works", request.param == "openat2")
    return request.param


@pytest.fixture
def tree(tmp_path: Path, resolver: str) -> tuple[Path, Path]:
    """(server root, host dir outside it with a secret and a directory of its own)."""
    host = tmp_path / "host"
    (host / "dir").mkdir(parents=True)
    (host / "secret").write_text("host secret")
    (host / "dir" / "keep").write_text("keep me")
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.txt").write_text("alpha")
    # what a tenant can create from inside the container
    os.symlink(host / "secret", root / "secret-link")
    os.symlink(host / "dir", root / "dir-link")
    os.symlink(root / "nowhere" / "file", root / "dangling")
    os.symlink("dir-link", root / "chain")  # a link to a link to the host
    os.symlink("/", root / "slash")
    return root, host


def host_intact(host: Path) -> None:
    assert (host / "secret").read_text() == "host secret"
    assert (host / "dir" / "keep").read_text() == "keep me"
    assert sorted(p.name for p in host.iterdir()) == ["dir", "secret"]
    assert sorted(p.name for p in (host / "dir").iterdir()) == ["keep"]
    assert stat.S_IMODE((host / "secret").stat().st_mode) != 0o777


HOSTILE_PATHS = ["secret-link", "dir-link/keep", "chain/keep", "dangling", "slash/etc/passwd", "dir-link/new",
                 "chain/new"]


@pytest.mark.parametrize("path", HOSTILE_PATHS)
def test_links_never_reach_the_host(tree: tuple[Path, Path], path: str) -> None:
    root, host = tree
    with Root(root) as r:
        with pytest.raises(FileError) as info:
            ops.read_file(r, path)
        assert info.value.code in {"symlink", "not_a_file", "not_a_directory"}
        if "/" in path:  # writing through a linked directory never creates anything on the host
            with pytest.raises(FileError):
                ops.write_file(r, path, b"pwned")
            with pytest.raises(FileError):
                ops.mkdir(r, path + "/deeper")
            with pytest.raises(FileError):
                ops.list_dir(r, path.rsplit("/", 1)[0])
        with pytest.raises(FileError):
            ops.chmod(r, path, 0o777)
        if "/" in path:
            with pytest.raises(FileError):
                ops.copy(r, path, "copied")
            assert not os.path.lexists(root / "copied")
        else:  # a link at the top copies as a link: its target is never read
            ops.copy(r, path, "copied")
            assert (root / "copied").is_symlink()
    host_intact(host)


def test_write_over_a_link_replaces_the_link_not_the_target(tree: tuple[Path, Path]) -> None:
    root, host = tree
    with Root(root) as r:
        ops.write_file(r, "secret-link", b"mine")
        ops.write_file(r, "dangling", b"also mine")
    assert not (root / "secret-link").is_symlink() and (root / "secret-link").read_bytes() == b"mine"
    assert not (root / "nowhere").exists()
    host_intact(host)


def test_delete_removes_links_never_targets(tree: tuple[Path, Path]) -> None:
    root, host = tree
    os.symlink(host / "dir", root / "sub" / "inner-link")
    with Root(root) as r:
        for name in ("dir-link", "chain", "dangling", "slash", "secret-link"):
            ops.delete(r, name)
        ops.delete(r, "sub")  # a directory holding a link to the host
    assert sorted(p.name for p in root.iterdir()) == []
    host_intact(host)


def test_directory_swapped_for_a_link_mid_delete(tree: tuple[Path, Path]) -> None:
    """The TOCTOU class: lstat says directory, open finds a link; the link is unlinked."""
    root, host = tree
    dirfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        (root / "victim").mkdir()
        real_stat = os.stat

        def swapping_stat(name: object, *a: object, **kw: object) -> os.stat_result:
            st = real_stat(name, *a, **kw)  # type: ignore[arg-type]
            if name == "victim" and stat.S_ISDIR(st.st_mode) and not os.path.islink(root / "victim"):
                (root / "victim").rmdir()
                os.symlink(host / "dir", root / "victim")
            return st

        os.stat = swapping_stat  # type: ignore[assignment]
        try:
            ops._remove_at(dirfd, "victim")
        finally:
            os.stat = real_stat
    finally:
        os.close(dirfd)
    assert not os.path.lexists(root / "victim")
    host_intact(host)


def test_file_swapped_for_a_link_between_check_and_open(tree: tuple[Path, Path]) -> None:
    root, host = tree
    with Root(root) as r:
        with r.parent("sub/a.txt") as (fd, name, _):
            (root / "sub" / "a.txt").unlink()
            os.symlink(host / "secret", root / "sub" / "a.txt")  # swapped after resolution
            with pytest.raises(FileError) as info:
                r.open_file(fd, name, "/sub/a.txt")
            assert info.value.code == "symlink"
    host_intact(host)


def test_chmod_never_follows_and_refuses_special_bits(tree: tuple[Path, Path]) -> None:
    root, host = tree
    with Root(root) as r:
        ops.chmod(r, "sub/a.txt", 0o600)
        assert stat.S_IMODE((root / "sub" / "a.txt").stat().st_mode) == 0o600
        for bad in (0o4755, 0o2755, 0o1777):
            with pytest.raises(FileError):
                ops.chmod(r, "sub/a.txt", bad)
        with pytest.raises(FileError):
            ops.chmod(r, "secret-link", 0o777)
    host_intact(host)


@pytest.mark.parametrize("bad", ["a\x00b", "a\nb", "a\rb", "x" * 256, "../outside", "sub/../../x", "/" * 5000])
def test_bad_names_are_refused_clearly(tree: tuple[Path, Path], bad: str) -> None:
    root, _ = tree
    with Root(root) as r, pytest.raises(FileError) as info:
        ops.write_file(r, bad, b"x")
    assert any(w in str(info.value) for w in ("NUL", "newline", "longer than", "'..'"))
    assert not (root.parent / "outside").exists()


def test_rename_and_move_stay_inside_and_never_replace(tree: tuple[Path, Path]) -> None:
    root, host = tree
    with Root(root) as r:
        ops.mkdir(r, "dest/deep")
        ops.rename(r, "sub/a.txt", "dest/deep/b.txt")
        assert (root / "dest" / "deep" / "b.txt").read_text() == "alpha"
        ops.write_file(r, "other", b"o")
        with pytest.raises(FileError) as info:
            ops.rename(r, "other", "dest/deep/b.txt")
        assert info.value.code == "exists"
        with pytest.raises(FileError):
            ops.rename(r, "other", "dir-link/moved")  # into a linked dir: refused
        with pytest.raises(FileError):
            ops.rename(r, "dest", "dest/deep/inside")
        ops.rename(r, "secret-link", "renamed-link")  # a link moves as a link
        assert os.readlink(root / "renamed-link") == str(host / "secret")
    host_intact(host)


def test_copy_files_and_trees_links_as_links(tree: tuple[Path, Path]) -> None:
    root, host = tree
    os.symlink(host / "secret", root / "sub" / "inner")
    with Root(root) as r:
        ops.copy(r, "sub", "sub2")
        ops.copy(r, "sub/a.txt", "a-copy.txt")
        with pytest.raises(FileError):
            ops.copy(r, "sub", "sub/again")
    assert (root / "sub2" / "a.txt").read_text() == "alpha"
    assert (root / "a-copy.txt").read_text() == "alpha"
    assert (root / "sub2" / "inner").is_symlink()
    host_intact(host)


def test_list_paginates_a_10000_entry_directory(tmp_path: Path, resolver: str) -> None:
    big = tmp_path / "root" / "big"
    big.mkdir(parents=True)
    for i in range(10_000):
        (big / f"f{i:05d}").touch()
    seen: list[str] = []
    with Root(tmp_path / "root") as r:
        after = None
        while True:
            page = ops.list_dir(r, "big", after, 1000)
            assert page["total"] == 10_000 and len(page["entries"]) <= 1000
            seen += [e["name"] for e in page["entries"]]
            after = page["next"]
            if after is None:
                break
    assert seen == sorted(f"f{i:05d}" for i in range(10_000))


def test_read_cap_and_atomic_write(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    with Root(root) as r:
        ops.write_file(r, "big.bin", b"x" * 2048)
        with pytest.raises(FileError) as info:
            ops.read_file(r, "big.bin", max_bytes=1024)
        assert info.value.code == "too_large"
        with pytest.raises(FileError):  # over the disk budget: old content stays, no temp file
            ops.write_file(r, "big.bin", b"y" * 4096, ops.Budget(1000))
        assert ops.read_file(r, "big.bin") == b"x" * 2048
    assert not [p for p in root.iterdir() if p.name.startswith(ops.TMP_PREFIX)]


def test_deny_list(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    (root / "server.properties").write_text("p")
    (root / "sub" / "secret.key").write_text("k")
    with Root(root, deny=["*.key", "server.properties"]) as r:
        for path in ("server.properties", "sub/secret.key"):
            with pytest.raises(FileError) as info:
                ops.read_file(r, path)
            assert info.value.code == "denied"
        assert "secret.key" not in [e["name"] for e in ops.list_dir(r, "sub")["entries"]]
        with pytest.raises(FileError):
            ops.write_file(r, "new.key", b"k")


# ---- archives -----------------------------------------------------------------------------


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]], gz: bool = True) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _ti(name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o644, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname = kind, mode, link
    return info


def _zip(entries: list[tuple[str, bytes, int]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data, unix in entries:
            info = zipfile.ZipInfo(name)
            info.external_attr = unix << 16
            zf.writestr(info, data)
    return buf.getvalue()


GOOD = (_ti("ok.txt"), b"fine")
HOSTILE_ARCHIVES = {
    "escape-dotdot": _tar([GOOD, (_ti("../escaped"), b"x")]),
    "escape-absolute": _tar([GOOD, (_ti("/tmp/escaped-abs"), b"x")]),
    "symlink-member": _tar([GOOD, (_ti("link", tarfile.SYMTYPE, link="/etc/passwd"), None)]),
    "symlink-then-write-through": _tar([(_ti("d", tarfile.SYMTYPE, link="../host"), None), (_ti("d/x"), b"x")]),
    "hardlink-member": _tar([GOOD, (_ti("hard", tarfile.LNKTYPE, link="/etc/shadow"), None)]),
    "device-member": _tar([GOOD, (_ti("dev", tarfile.CHRTYPE), None)]),
    "fifo-member": _tar([GOOD, (_ti("fifo", tarfile.FIFOTYPE), None)]),
    "setuid-member": _tar([GOOD, (_ti("suid", mode=0o4755), b"#!/bin/sh")]),
    "plain-tar-escape": _tar([GOOD, (_ti("../escaped"), b"x")], gz=False),
    "zip-escape": _zip([("ok.txt", b"fine", 0o100644), ("../escaped", b"x", 0o100644)]),
    "zip-symlink": _zip([("ok.txt", b"fine", 0o100644), ("link", b"/etc/passwd", 0o120777)]),
    "zip-setuid": _zip([("ok.txt", b"fine", 0o100644), ("suid", b"x", 0o104755)]),
    "newline-name": _tar([GOOD, (_ti("a\nb"), b"x")]),
    "garbage": b"PK\x03\x04 this is not really a zip",
}


@pytest.mark.parametrize("kind", sorted(HOSTILE_ARCHIVES))
def test_hostile_archives_are_refused_without_leftovers(tree: tuple[Path, Path], kind: str) -> None:
    root, host = tree
    (root / "in").mkdir()
    (root / "evil.arc").write_bytes(HOSTILE_ARCHIVES[kind])
    with Root(root) as r, pytest.raises(FileError):
        archives.decompress(r, "evil.arc", "in")
    assert list((root / "in").iterdir()) == []  # not even ok.txt, no temp dir
    assert not (root / "escaped").exists() and not (root.parent / "escaped").exists()
    assert not Path("/tmp/escaped-abs").exists()
    host_intact(host)


@pytest.mark.parametrize("fmt", ["tar.gz", "zip"])
def test_bombs_are_cut_while_streaming(tree: tuple[Path, Path], fmt: str) -> None:
    root, _ = tree
    big = b"\0" * (4 * 1024 * 1024)  # compresses to a few KB
    data = _tar([(_ti("bomb"), big)]) if fmt == "tar.gz" else _zip([("bomb", big, 0o100644)])
    many = _tar([(_ti(f"f{i}"), b"") for i in range(50)]) if fmt == "tar.gz" else \
        _zip([(f"f{i}", b"", 0o100644) for i in range(50)])
    (root / "bomb.arc").write_bytes(data)
    (root / "many.arc").write_bytes(many)
    with Root(root) as r:
        with pytest.raises(FileError, match="beyond"):
            archives.decompress(r, "bomb.arc", "/", archives.Caps(bytes=1024 * 1024))
        with pytest.raises(FileError, match="disk limit"):
            archives.decompress(r, "bomb.arc", "/", archives.Caps(), ops.Budget(1024 * 1024))
        with pytest.raises(FileError, match="more than 10 entries"):
            archives.decompress(r, "many.arc", "/", archives.Caps(entries=10))
    assert not (root / "bomb").exists() and not (root / "f0").exists()
    assert not [p for p in root.iterdir() if p.name.startswith(ops.TMP_PREFIX)]


@pytest.mark.parametrize("fmt", ["tar.gz", "zip"])
def test_compress_and_decompress_round_trip_skipping_links(tree: tuple[Path, Path], fmt: str) -> None:
    root, host = tree
    (root / "sub" / "deep").mkdir()
    (root / "sub" / "deep" / "b.bin").write_bytes(os.urandom(5000))
    os.symlink(host / "secret", root / "sub" / "inner-link")
    with Root(root) as r:
        with pytest.raises(FileError):  # a link named as a source is refused, never followed
            archives.compress(r, ["sub", "dir-link"], f"out.{fmt}", fmt)
        result = archives.compress(r, ["sub"], f"out.{fmt}", fmt)
        assert result["size"] > 0
        ops.mkdir(r, "restore")
        assert archives.decompress(r, f"out.{fmt}", "restore") >= 3
        with pytest.raises(FileError) as info:  # a second extraction would clash: refused whole
            archives.decompress(r, f"out.{fmt}", "restore")
        assert info.value.code == "exists"
    assert (root / "restore" / "sub" / "a.txt").read_text() == "alpha"
    assert (root / "restore" / "sub" / "deep" / "b.bin").read_bytes() == (root / "sub" / "deep" / "b.bin").read_bytes()
    assert not os.path.lexists(root / "restore" / "sub" / "inner-link")
    host_intact(host)
