"""Compress and decompress, treating every archive as hostile.

Extraction refuses (the whole archive, leaving nothing behind) any member that escapes
the destination (absolute names, ``..``), any symlink, hardlink, device, FIFO or other
non-regular member, setuid/setgid/sticky bits, over-long or NUL/newline names, and bombs:
the entry count and the bytes actually written are capped while streaming (headers can
lie), as is the server's remaining disk. Members are written into a fresh temp directory
inside the destination through the same fd-confined calls as every other operation, and
moved into place only when the whole archive was accepted.
"""

from __future__ import annotations

import os
import stat
import tarfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

from .confine import FileError, Root, _translate, rename_noreplace, split_path
from .ops import ALLOWED_MODE, CHUNK, Budget, _remove_at, _tmp_name

MAX_ENTRIES = 100_000
MAX_BYTES = 50 * 1024**3


@dataclass(frozen=True)
class Caps:
    entries: int = MAX_ENTRIES
    bytes: int = MAX_BYTES


def _detect(fd: int) -> str:
    head = os.pread(fd, 512, 0)
    if head[:4] == b"PK\x03\x04" or head[:4] == b"PK\x05\x06":
        return "zip"
    if head[:2] == b"\x1f\x8b":
        return "tar.gz"
    if head[257:262] == b"ustar":
        return "tar"
    raise FileError("not a zip, tar or tar.gz archive", "bad_archive")


@dataclass
class _Member:
    parts: list[str]
    kind: str  # file | dir
    mode: int
    stream: Any  # callable returning a binary reader, for files


def _check_member(name: str, kind_ok: bool, mode: int, what: str) -> list[str]:
    if not kind_ok:
        raise FileError(f"archive member {name!r} is a {what}; only files and directories are extracted",
                        "bad_archive")
    if name.startswith("/") or name.startswith("\\") or (len(name) > 1 and name[1] == ":"):
        raise FileError(f"archive member {name!r} has an absolute path", "bad_archive")
    if "\\" in name:
        raise FileError(f"archive member {name!r} contains a backslash", "bad_archive")
    try:
        parts = split_path(name)
    except FileError as exc:
        raise FileError(f"archive member {name[:80]!r}: {exc}", "bad_archive") from None
    if not parts:
        raise FileError(f"archive member {name!r} has no name", "bad_archive")
    if mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX):
        raise FileError(f"archive member {name!r} has setuid, setgid or sticky bits", "bad_archive")
    return parts


def _tar_members(fileobj: IO[bytes], compressed: bool) -> Iterator[_Member]:
    with tarfile.open(fileobj=fileobj, mode="r|gz" if compressed else "r|") as tar:
        for info in tar:
            if info.issym():
                what = "symbolic link"
            elif info.islnk():
                what = "hard link"
            elif info.ischr() or info.isblk():
                what = "device"
            elif info.isfifo():
                what = "FIFO"
            else:
                what = "special entry"
            parts = _check_member(info.name, info.isfile() or info.isdir(), info.mode, what)
            yield _Member(parts, "dir" if info.isdir() else "file", info.mode & ALLOWED_MODE,
                          (lambda i=info: tar.extractfile(i)))


def _zip_members(fileobj: IO[bytes]) -> Iterator[_Member]:
    try:
        zf = zipfile.ZipFile(fileobj)
    except zipfile.BadZipFile as exc:
        raise FileError(f"broken zip archive: {exc}", "bad_archive") from None
    with zf:
        for info in zf.infolist():
            unix = info.external_attr >> 16
            ftype = stat.S_IFMT(unix)
            is_dir = info.is_dir()
            ok = ftype in (0, stat.S_IFREG, stat.S_IFDIR)
            what = {stat.S_IFLNK: "symbolic link", stat.S_IFCHR: "device", stat.S_IFBLK: "device",
                    stat.S_IFIFO: "FIFO"}.get(ftype, "special entry")
            parts = _check_member(info.filename, ok, stat.S_IMODE(unix), what)
            mode = stat.S_IMODE(unix) & ALLOWED_MODE or (0o755 if is_dir else 0o644)
            yield _Member(parts, "dir" if is_dir else "file", mode, (lambda i=info: zf.open(i)))


def _ensure_dirs(root_fd: int, parts: Sequence[str]) -> int:
    """Open (creating) ``parts`` below the temp dir fd, never through a link."""
    fd = os.dup(root_fd)
    for part in parts:
        try:
            os.mkdir(part, 0o755, dir_fd=fd)
        except FileExistsError:
            pass
        try:
            nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        except OSError as exc:
            os.close(fd)
            raise FileError(f"archive member path {'/'.join(parts)!r} conflicts with a file: {exc.strerror}",
                            "bad_archive") from None
        os.close(fd)
        fd = nxt
    return fd


def decompress(root: Root, archive: str, dest: str, caps: Caps = Caps(), budget: Budget | None = None) -> int:
    """Extract ``archive`` into directory ``dest``; returns the number of entries. All or nothing."""
    with root.parent(archive) as (adir, aname, aparts):
        afd = root.open_file(adir, aname, "/" + "/".join(aparts))
    try:
        kind = _detect(afd)
        with os.fdopen(os.dup(afd), "rb") as fileobj:
            return extract(root, fileobj, kind, dest, caps, budget)
    finally:
        os.close(afd)


def extract(root: Root, fileobj: IO[bytes], kind: str, dest: str, caps: Caps = Caps(),
            budget: Budget | None = None, replace: bool = False) -> int:
    """Extract an archive stream into ``dest`` through a temp dir; ``replace`` swaps existing
    top-level entries (restores) instead of refusing them."""
    budget = budget or Budget()
    dest_parts = root.parts(dest)
    with root.dir(dest_parts) as dfd:
        tmp = _tmp_name()
        os.mkdir(tmp, 0o755, dir_fd=dfd)
        try:
            count = _extract_into(root, dest_parts, dfd, tmp, fileobj, kind, caps, budget)
            _move_up(dfd, tmp, dest_parts, replace)
        except BaseException as exc:
            _remove_at(dfd, tmp)
            if isinstance(exc, (tarfile.TarError, EOFError, zipfile.BadZipFile)):
                raise FileError(f"broken archive: {exc}", "bad_archive") from None
            if isinstance(exc, OSError):
                raise _translate(exc, "/" + "/".join(dest_parts)) from None
            raise
        _remove_at(dfd, tmp)
        return count


def _extract_into(root: Root, dest_parts: list[str], dfd: int, tmp: str, fileobj: IO[bytes], kind: str,
                  caps: Caps, budget: Budget) -> int:
    tfd = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
    count = written = 0
    try:
        members = _zip_members(fileobj) if kind == "zip" else _tar_members(fileobj, kind == "tar.gz")
        for member in members:
            count += 1
            if count > caps.entries:
                raise FileError(f"archive has more than {caps.entries} entries", "too_large")
            if root.denied([*dest_parts, *member.parts]):
                raise FileError(f"archive member {'/'.join(member.parts)!r} is denied by the server's file policy",
                                "denied")
            if member.kind == "dir":
                os.close(_ensure_dirs(tfd, member.parts))
                continue
            pfd = _ensure_dirs(tfd, member.parts[:-1])
            try:
                name = member.parts[-1]
                try:
                    out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                                  member.mode or 0o644, dir_fd=pfd)
                except FileExistsError:
                    raise FileError(f"archive member {'/'.join(member.parts)!r} appears twice", "bad_archive") from None
                try:
                    src = member.stream()
                    while chunk := src.read(CHUNK):
                        written += len(chunk)
                        if written > caps.bytes:
                            raise FileError(f"archive expands beyond {caps.bytes} bytes", "too_large")
                        budget.take(len(chunk))
                        os.write(out, chunk)
                finally:
                    os.close(out)
            finally:
                os.close(pfd)
    finally:
        os.close(tfd)
    return count


def _move_up(dfd: int, tmp: str, dest_parts: list[str], replace: bool = False) -> None:
    """Move the temp dir's top-level entries into the destination; refuse before moving anything on a clash."""
    tfd = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
    try:
        names = sorted(os.listdir(tfd))
        for name in names:
            try:
                os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if not replace:
                raise FileError(f"/{'/'.join([*dest_parts, name])}: already exists", "exists")
        for name in names:
            if replace:
                _remove_at(dfd, name)
            rename_noreplace(tfd, name, dfd, name)
    finally:
        os.close(tfd)


# ---- compress ------------------------------------------------------------------------------

def _walk(root: Root, fd: int, parts: list[str], depth: int = 0) -> Iterator[tuple[list[str], int, os.stat_result]]:
    """(parts, dir fd holding it, lstat) of every entry under ``fd``, links not followed (and skipped)."""
    if depth > 128:
        raise FileError("directory tree too deep")
    for name in sorted(os.listdir(fd)):
        if name.startswith(".stellar-tmp-"):
            continue
        child = [*parts, name]
        if root.denied(child):
            continue
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            yield child, fd, st
            try:
                sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            except OSError:
                continue  # swapped for a link meanwhile: skipped like any link
            try:
                yield from _walk(root, sub, child, depth + 1)
            finally:
                os.close(sub)
        elif stat.S_ISREG(st.st_mode):
            yield child, fd, st


def iter_tree(root: Root, base: list[str],
              ignore: Sequence[str] = ()) -> Iterator[tuple[list[str], int, os.stat_result]]:
    """Entries under ``base`` (relative parts), skipping links, special files and ignore patterns."""
    probe = Root.__new__(Root)
    probe.deny = [*root.deny, *ignore]
    with root.dir(base) as fd:
        for parts, dirfd, st in _walk(probe, fd, list(base)):
            yield parts[len(base):], dirfd, st


def write_tar(root: Root, sources: Sequence[list[str]], out: IO[bytes], compress: bool = True,
              ignore: Sequence[str] = (), on_progress: Any = None) -> int:
    """Stream a (gzip'd) tar of ``sources`` (each relative to the root) into ``out``; returns bytes read."""
    total = 0
    with tarfile.open(fileobj=out, mode="w|gz" if compress else "w|", format=tarfile.PAX_FORMAT) as tar:
        for src in sources:
            for rel, dirfd, st in _entries(root, src, ignore):
                info = tarfile.TarInfo("/".join(rel))
                info.mtime, info.mode = int(st.st_mtime), stat.S_IMODE(st.st_mode) & ALLOWED_MODE
                if stat.S_ISDIR(st.st_mode):
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                    continue
                fd = root.open_file(dirfd, rel[-1], "/".join(rel))
                try:
                    info.size = os.fstat(fd).st_size
                    with os.fdopen(fd, "rb", closefd=False) as f:
                        tar.addfile(info, f)
                finally:
                    os.close(fd)
                total += info.size
                if on_progress:
                    on_progress(total)
    return total


def _entries(root: Root, src: list[str], ignore: Sequence[str]) -> Iterator[tuple[list[str], int, os.stat_result]]:
    """A source path's own entry and, for a directory, everything below it (names relative to its parent)."""
    if not src:
        yield from iter_tree(root, [], ignore)
        return
    with root.dir(src[:-1]) as pfd:
        st = os.stat(src[-1], dir_fd=pfd, follow_symlinks=False)
        if stat.S_ISREG(st.st_mode):
            yield [src[-1]], pfd, st
        elif stat.S_ISDIR(st.st_mode):
            yield [src[-1]], pfd, st
            for parts, dirfd, cst in iter_tree(root, src, ignore):
                yield [src[-1], *parts], dirfd, cst
        else:
            raise FileError(f"/{'/'.join(src)}: not a file or directory (links are not archived)", "symlink")


def compress(root: Root, paths: Sequence[str], dest: str, fmt: str = "tar.gz",
             budget: Budget | None = None) -> dict[str, Any]:
    """Archive ``paths`` into the new file ``dest`` (tar.gz or zip); links and special files are skipped."""
    if fmt not in ("tar.gz", "zip"):
        raise FileError("format must be tar.gz or zip")
    budget = budget or Budget()
    sources = [root.parts(p, allow_root=True) for p in paths] or [[]]
    with root.parent(dest) as (dfd, dname, dparts):
        if root.lstat(dfd, dname) is not None:
            raise FileError(f"/{'/'.join(dparts)}: already exists", "exists")
        tmp = _tmp_name()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dfd)
        try:
            with os.fdopen(fd, "wb") as raw:
                out = _Budgeted(raw, budget)
                if fmt == "tar.gz":
                    write_tar(root, sources, out)  # type: ignore[arg-type]
                else:
                    _write_zip(root, sources, out)
            rename_noreplace(dfd, tmp, dfd, dname)
        except BaseException as exc:
            _remove_at(dfd, tmp)
            if isinstance(exc, OSError):
                raise _translate(exc, "/" + "/".join(dparts)) from None
            raise
        st = os.stat(dname, dir_fd=dfd, follow_symlinks=False)
    return {"path": "/" + "/".join(dparts), "size": st.st_size}


def _write_zip(root: Root, sources: Sequence[list[str]], out: Any) -> None:
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for src in sources:
            for rel, dirfd, st in _entries(root, src, ()):
                name = "/".join(rel)
                if stat.S_ISDIR(st.st_mode):
                    info = zipfile.ZipInfo(name + "/")
                    info.external_attr = (stat.S_IFDIR | (stat.S_IMODE(st.st_mode) & ALLOWED_MODE)) << 16
                    zf.writestr(info, b"")
                    continue
                fd = root.open_file(dirfd, rel[-1], name)
                try:
                    info = zipfile.ZipInfo(name)
                    info.external_attr = (stat.S_IFREG | (stat.S_IMODE(st.st_mode) & ALLOWED_MODE)) << 16
                    info.compress_type = zipfile.ZIP_DEFLATED
                    with os.fdopen(fd, "rb", closefd=False) as f, zf.open(info, "w", force_zip64=True) as w:
                        while chunk := f.read(CHUNK):
                            w.write(chunk)
                finally:
                    os.close(fd)


class _Budgeted:
    """A write-only file wrapper charging every byte to the disk budget."""

    def __init__(self, raw: IO[bytes], budget: Budget) -> None:
        self._raw, self._budget = raw, budget

    def write(self, data: bytes) -> int:
        self._budget.take(len(data))
        return self._raw.write(data)

    def flush(self) -> None:
        self._raw.flush()

    def tell(self) -> int:
        return self._raw.tell()

    def seek(self, *args: Any) -> int:
        return self._raw.seek(*args)

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        return None
