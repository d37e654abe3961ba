"""Kernel-confined path resolution under a server's root directory.

Wings' history (CVE-2023-25152, CVE-2023-25168, CVE-2024-27102, GHSA-rhq6-9rgh-v45c) shows
that string checks on paths cannot be made safe: a tenant creates symlinks inside their
own tree (from the container, where ``/`` is *their* root but the host resolves it as the
host's), swaps a file for a link between check and use, or chains links. So nothing here
ever hands the kernel a full path: every lookup is ``openat`` relative to a directory fd,
one component at a time with ``O_NOFOLLOW`` (or a single ``openat2`` with
``RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`` where the kernel has it), and every operation on
the final component is an ``*at`` call on the parent's fd that does not follow links.
"""

from __future__ import annotations

import ctypes
import errno
import fnmatch
import os
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

MAX_COMPONENT = 255  # bytes, NAME_MAX
MAX_PATH = 4096  # bytes, PATH_MAX
MAX_DEPTH = 128

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

# openat2(2): Linux 5.6+. struct open_how {u64 flags; u64 mode; u64 resolve;}
_SYS_OPENAT2 = 437
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08


class FileError(Exception):
    """A refused or failed file operation; the message is safe to show to the tenant."""

    def __init__(self, message: str, code: str = "invalid") -> None:
        super().__init__(message)
        self.code = code


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_openat2_works: bool | None = None


def _openat2(dirfd: int, path: str, flags: int) -> int:
    how = _OpenHow(flags, 0, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)
    fd = _libc.syscall(_SYS_OPENAT2, dirfd, os.fsencode(path), ctypes.byref(how), ctypes.sizeof(how))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return int(fd)


def openat2_available() -> bool:
    """Whether this kernel (and seccomp profile) lets us use openat2; probed once."""
    global _openat2_works
    if _openat2_works is None:
        try:
            os.close(_openat2(os.open("/", _DIR_FLAGS), ".", _DIR_FLAGS))
            _openat2_works = True
        except OSError:
            _openat2_works = False
    return _openat2_works


def split_path(path: str) -> list[str]:
    """Validate a tenant path and return its components; ``/`` is the server root.

    ``..`` is refused outright rather than normalised: nothing legitimate needs it and
    normalising it is where string-based confinement goes wrong.
    """
    if not isinstance(path, str):
        raise FileError("path must be a string")
    if "\x00" in path:
        raise FileError("path contains a NUL byte")
    if "\n" in path or "\r" in path:
        raise FileError("path contains a newline")
    if len(path.encode("utf-8", "surrogateescape")) > MAX_PATH:
        raise FileError(f"path longer than {MAX_PATH} bytes")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    for part in parts:
        if part == "..":
            raise FileError("path contains '..'")
        if len(part.encode("utf-8", "surrogateescape")) > MAX_COMPONENT:
            raise FileError(f"name longer than {MAX_COMPONENT} bytes: {part[:40]}…")
    if len(parts) > MAX_DEPTH:
        raise FileError(f"path deeper than {MAX_DEPTH} levels")
    return parts


def check_name(name: str) -> str:
    """One new entry name (rename targets, archive members): same rules, exactly one component."""
    parts = split_path(name)
    if len(parts) != 1 or "/" in name:
        raise FileError(f"invalid name {name!r}")
    return parts[0]


def _translate(exc: OSError, path: str) -> FileError:
    """Turn errno into a tenant-facing error; ELOOP/ENOTDIR on a no-follow walk means a symlink."""
    if exc.errno == errno.ELOOP or exc.errno == errno.EXDEV:
        return FileError(f"{path}: is or passes through a symbolic link", "symlink")
    if exc.errno == errno.ENOENT:
        return FileError(f"{path}: no such file or directory", "not_found")
    if exc.errno == errno.ENOTDIR:
        return FileError(f"{path}: not a directory (or a symbolic link)", "not_a_directory")
    if exc.errno == errno.EEXIST or exc.errno == errno.ENOTEMPTY:
        return FileError(f"{path}: already exists", "exists")
    if exc.errno == errno.EISDIR:
        return FileError(f"{path}: is a directory", "is_a_directory")
    if exc.errno == errno.ENOSPC or exc.errno == errno.EDQUOT:
        return FileError(f"{path}: no space left", "no_space")
    if exc.errno == errno.EACCES or exc.errno == errno.EPERM:
        return FileError(f"{path}: permission denied", "denied")
    return FileError(f"{path}: {os.strerror(exc.errno or 0)}", "io")


class Root:
    """A server's file tree, held open by fd; all paths are relative to it."""

    def __init__(self, path: str | os.PathLike[str], deny: Sequence[str] = ()) -> None:
        self.path = os.fspath(path)
        self.fd = os.open(self.path, _DIR_FLAGS)
        self.deny = [d.strip() for d in deny if d.strip()]

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Root:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- policy --------------------------------------------------------------------
    def denied(self, parts: Sequence[str]) -> bool:
        """The blueprint's deny-list, gitignore-like: a pattern with a '/' matches the
        whole path, one without matches any component; a denied directory hides its contents."""
        for pattern in self.deny:
            anchored = pattern.strip("/")
            for i in range(1, len(parts) + 1):
                prefix = "/".join(parts[:i])
                if "/" in anchored:
                    if fnmatch.fnmatchcase(prefix, anchored):
                        return True
                elif fnmatch.fnmatchcase(parts[i - 1], anchored):
                    return True
        return False

    def parts(self, path: str, allow_root: bool = True) -> list[str]:
        parts = split_path(path)
        if not parts and not allow_root:
            raise FileError("this operation needs a path below the root")
        if parts and self.denied(parts):
            raise FileError(f"/{'/'.join(parts)}: denied by the server's file policy", "denied")
        return parts

    # ---- resolution ----------------------------------------------------------------
    def open_dir(self, parts: Sequence[str]) -> int:
        """A new fd for the directory at ``parts``; never crosses a symlink or leaves the root."""
        shown = "/" + "/".join(parts)
        if not parts:
            return os.dup(self.fd)
        if openat2_available():
            try:
                return _openat2(self.fd, "/".join(parts), _DIR_FLAGS)
            except OSError as exc:
                raise _translate(exc, shown) from None
        fd = os.dup(self.fd)
        try:
            for part in parts:
                try:
                    nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    raise _translate(exc, shown) from None
                os.close(fd)
                fd = nxt
            return fd
        except BaseException:
            os.close(fd)
            raise

    @contextmanager
    def dir(self, parts: Sequence[str]) -> Iterator[int]:
        fd = self.open_dir(parts)
        try:
            yield fd
        finally:
            os.close(fd)

    @contextmanager
    def parent(self, path: str) -> Iterator[tuple[int, str, list[str]]]:
        """(parent dir fd, final name, all parts) for an entry below the root."""
        parts = self.parts(path, allow_root=False)
        with self.dir(parts[:-1]) as fd:
            yield fd, parts[-1], parts

    def lstat(self, dirfd: int, name: str) -> os.stat_result | None:
        try:
            return os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def open_file(self, dirfd: int, name: str, shown: str) -> int:
        """Open an existing regular file for reading, never through a link, never blocking on a FIFO."""
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dirfd)
        except OSError as exc:
            raise _translate(exc, shown) from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise FileError(f"{shown}: not a regular file", "not_a_file")
        return fd


# renameat2(2) with RENAME_NOREPLACE: a move never silently replaces what is there.
_SYS_RENAMEAT2 = 316 if os.uname().machine == "x86_64" else 276
RENAME_NOREPLACE = 1


def rename_noreplace(src_dir: int, src: str, dst_dir: int, dst: str) -> None:
    rc = _libc.syscall(_SYS_RENAMEAT2, src_dir, os.fsencode(src), dst_dir, os.fsencode(dst), RENAME_NOREPLACE)
    if rc < 0:
        err = ctypes.get_errno()
        if err in (errno.ENOSYS, errno.EINVAL):  # very old kernel or filesystem: check, then rename
            if os.path.lexists(f"/proc/self/fd/{dst_dir}/{dst}"):
                raise OSError(errno.EEXIST, os.strerror(errno.EEXIST), dst)
            os.rename(src, dst, src_dir_fd=src_dir, dst_dir_fd=dst_dir)
            return
        raise OSError(err, os.strerror(err), dst)
