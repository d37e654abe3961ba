"""File manager operations on a confined ``Root``.

Every operation resolves its parent directory by fd (see ``confine``) and acts on the
final name with an ``*at`` call that does not follow links: a symlink is an entry like any
other, listed, renamed, deleted or copied *as a link*, never dereferenced.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from dataclasses import dataclass
from typing import Any

from .confine import FileError, Root, _translate, check_name, rename_noreplace

TMP_PREFIX = ".stellar-tmp-"
MAX_READ = 4 * 1024 * 1024
MAX_PAGE = 1000
ALLOWED_MODE = 0o777  # setuid, setgid and sticky are never granted through the panel
CHUNK = 1024 * 1024


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISREG(mode):
        return "file"
    return "other"


def _entry(name: str, st: os.stat_result) -> dict[str, Any]:
    return {"name": name, "type": _kind(st.st_mode), "size": st.st_size, "mode": f"{stat.S_IMODE(st.st_mode):o}",
            "modified": st.st_mtime}


@dataclass
class Budget:
    """How many bytes an operation may still add (the server's disk limit minus its usage)."""

    remaining: int | None = None

    def take(self, n: int) -> None:
        if self.remaining is None:
            return
        self.remaining -= n
        if self.remaining < 0:
            raise FileError("the server's disk limit would be exceeded", "no_space")


def list_dir(root: Root, path: str, after: str | None = None, limit: int = 200) -> dict[str, Any]:
    """One page of a directory, by name; ``next`` is the cursor (the last name) or None.

    Only the page's entries are stat'ed, so a 10,000-entry directory costs one getdents
    pass and ``limit`` lstat calls per page.
    """
    limit = max(1, min(limit, MAX_PAGE))
    parts = root.parts(path)
    with root.dir(parts) as fd:
        names = sorted(n for n in os.listdir(fd) if not root.denied([*parts, n]))
        start = 0
        if after is not None:
            import bisect

            start = bisect.bisect_right(names, after)
        page = names[start:start + limit]
        entries = []
        for name in page:
            st = root.lstat(fd, name)
            if st is not None:
                entries.append(_entry(name, st))
    more = start + limit < len(names)
    return {"path": "/" + "/".join(parts), "entries": entries, "total": len(names),
            "next": page[-1] if more and page else None}


def stat_entry(root: Root, path: str) -> dict[str, Any]:
    with root.parent(path) as (fd, name, parts):
        st = root.lstat(fd, name)
        if st is None:
            raise FileError(f"/{'/'.join(parts)}: no such file or directory", "not_found")
        return _entry(name, st)


def read_file(root: Root, path: str, max_bytes: int = MAX_READ) -> bytes:
    with root.parent(path) as (dirfd, name, parts):
        shown = "/" + "/".join(parts)
        fd = root.open_file(dirfd, name, shown)
        try:
            if os.fstat(fd).st_size > max_bytes:
                raise FileError(f"{shown}: larger than {max_bytes} bytes; download it instead", "too_large")
            with os.fdopen(fd, "rb", closefd=False) as f:
                data = f.read(max_bytes + 1)
        finally:
            os.close(fd)
    if len(data) > max_bytes:
        raise FileError(f"{shown}: larger than {max_bytes} bytes; download it instead", "too_large")
    return data


def open_read(root: Root, path: str) -> tuple[int, int]:
    """(fd, size) of a regular file, for streaming downloads; the caller closes the fd."""
    with root.parent(path) as (dirfd, name, parts):
        fd = root.open_file(dirfd, name, "/" + "/".join(parts))
        return fd, os.fstat(fd).st_size


def _tmp_name() -> str:
    return TMP_PREFIX + secrets.token_hex(8)


def write_stream(root: Root, path: str, chunks: Any, budget: Budget | None = None, mode: int = 0o644) -> int:
    """Write atomically: a temp file in the same directory, fsync, then rename over the name.

    The rename replaces a symlink at ``path`` with a file (it never writes through it); a
    failure leaves the old content and no temp file.
    """
    budget = budget or Budget()
    with root.parent(path) as (dirfd, name, parts):
        shown = "/" + "/".join(parts)
        old = root.lstat(dirfd, name)
        if old is not None and stat.S_ISDIR(old.st_mode):
            raise FileError(f"{shown}: is a directory", "is_a_directory")
        if old is not None and stat.S_ISREG(old.st_mode):
            budget.take(-old.st_size)
            mode = stat.S_IMODE(old.st_mode) & ALLOWED_MODE
        tmp = _tmp_name()
        written = 0
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode & ALLOWED_MODE,
                         dir_fd=dirfd)
        except OSError as exc:
            raise _translate(exc, shown) from None
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in chunks:
                    budget.take(len(chunk))
                    f.write(chunk)
                    written += len(chunk)
                f.flush()
                os.fsync(f.fileno())
            os.rename(tmp, name, src_dir_fd=dirfd, dst_dir_fd=dirfd)
        except BaseException as exc:
            try:
                os.unlink(tmp, dir_fd=dirfd)
            except OSError:
                pass
            if isinstance(exc, OSError):
                raise _translate(exc, shown) from None
            raise
        return written


def write_file(root: Root, path: str, data: bytes, budget: Budget | None = None) -> int:
    return write_stream(root, path, [data], budget)


def mkdir(root: Root, path: str) -> None:
    """Create the directory and any missing parents; an existing link in the way is refused."""
    parts = root.parts(path, allow_root=False)
    fd = os.dup(root.fd)
    try:
        for i, part in enumerate(parts):
            try:
                os.mkdir(part, 0o755, dir_fd=fd)
            except FileExistsError:
                pass
            except OSError as exc:
                raise _translate(exc, "/" + "/".join(parts[:i + 1])) from None
            try:
                nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            except OSError as exc:
                raise _translate(exc, "/" + "/".join(parts[:i + 1])) from None
            os.close(fd)
            fd = nxt
    finally:
        os.close(fd)


def rename(root: Root, src: str, dst: str) -> None:
    """Move or rename; never replaces an existing destination."""
    with root.parent(src) as (sfd, sname, sparts), root.parent(dst) as (dfd, dname, dparts):
        if dparts[:len(sparts)] == sparts:
            raise FileError("cannot move a directory into itself")
        try:
            rename_noreplace(sfd, sname, dfd, dname)
        except OSError as exc:
            raise _translate(exc, "/" + "/".join(sparts if exc.errno == errno.ENOENT else dparts)) from None


def _copy_into(root: Root, sfd: int, sname: str, dfd: int, dname: str, budget: Budget, depth: int = 0) -> None:
    if depth > 128:
        raise FileError("directory tree too deep to copy")
    st = root.lstat(sfd, sname)
    if st is None:
        raise FileError(f"{sname}: vanished during the copy", "not_found")
    if stat.S_ISLNK(st.st_mode):  # copied as a link, never followed
        os.symlink(os.readlink(sname, dir_fd=sfd), dname, dir_fd=dfd)
    elif stat.S_ISDIR(st.st_mode):
        os.mkdir(dname, 0o755, dir_fd=dfd)
        src = os.open(sname, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=sfd)
        try:
            dst = os.open(dname, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
            try:
                for child in sorted(os.listdir(src)):
                    _copy_into(root, src, child, dst, child, budget, depth + 1)
            finally:
                os.close(dst)
        finally:
            os.close(src)
    elif stat.S_ISREG(st.st_mode):
        budget.take(st.st_size)
        src = root.open_file(sfd, sname, sname)
        try:
            dst = os.open(dname, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                          stat.S_IMODE(st.st_mode) & ALLOWED_MODE, dir_fd=dfd)
            try:
                while chunk := os.read(src, CHUNK):
                    os.write(dst, chunk)
            finally:
                os.close(dst)
        finally:
            os.close(src)
    # sockets, FIFOs and devices are skipped: nothing a game server needs copied


def copy(root: Root, src: str, dst: str, budget: Budget | None = None) -> None:
    """Copy a file or a directory tree (links as links); the destination must not exist.

    Built under a temp name and renamed into place, so a failed copy leaves nothing behind.
    """
    budget = budget or Budget()
    with root.parent(src) as (sfd, sname, sparts), root.parent(dst) as (dfd, dname, dparts):
        if dparts[:len(sparts)] == sparts:
            raise FileError("cannot copy a directory into itself")
        if root.lstat(dfd, dname) is not None:
            raise FileError(f"/{'/'.join(dparts)}: already exists", "exists")
        tmp = _tmp_name()
        try:
            _copy_into(root, sfd, sname, dfd, tmp, budget)
            rename_noreplace(dfd, tmp, dfd, dname)
        except BaseException as exc:
            _remove_at(dfd, tmp)
            if isinstance(exc, OSError):
                raise _translate(exc, "/" + "/".join(dparts)) from None
            raise


def _remove_at(dirfd: int, name: str, depth: int = 0) -> None:
    """Remove ``name`` in ``dirfd``: links and files are unlinked, directories emptied by fd.

    A directory swapped for a link mid-way fails the O_NOFOLLOW open and is then unlinked
    as the link it has become, so a link's target is never touched.
    """
    if depth > 256:
        raise FileError("directory tree too deep to delete")
    try:
        st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        try:
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                os.unlink(name, dir_fd=dirfd)
                return
            raise
        try:
            for child in os.listdir(fd):
                _remove_at(fd, child, depth + 1)
        finally:
            os.close(fd)
        os.rmdir(name, dir_fd=dirfd)
    else:
        os.unlink(name, dir_fd=dirfd)


def delete(root: Root, path: str) -> None:
    with root.parent(path) as (dirfd, name, parts):
        if root.lstat(dirfd, name) is None:
            raise FileError(f"/{'/'.join(parts)}: no such file or directory", "not_found")
        try:
            _remove_at(dirfd, name)
        except OSError as exc:
            raise _translate(exc, "/" + "/".join(parts)) from None


def chmod(root: Root, path: str, mode: int) -> None:
    """Change the mode of the entry itself: opened with O_NOFOLLOW, changed by fd (fchmod).

    A link is refused (a link has no mode of its own on Linux); setuid/setgid/sticky are
    refused, so the panel can never mint a privileged binary.
    """
    if not isinstance(mode, int) or mode < 0 or mode & ~ALLOWED_MODE:
        raise FileError("mode must be between 0 and 777 (no setuid, setgid or sticky bits)")
    with root.parent(path) as (dirfd, name, parts):
        shown = "/" + "/".join(parts)
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dirfd)
        except OSError as exc:
            raise _translate(exc, shown) from None
        try:
            os.fchmod(fd, mode)
        finally:
            os.close(fd)


def rename_name(root: Root, path: str, new_name: str) -> None:
    """Rename within the same directory (the common "rename" button)."""
    check_name(new_name)
    parent = "/".join(root.parts(path, allow_root=False)[:-1])
    rename(root, path, f"{parent}/{new_name}")
