#!/usr/bin/python3
# A passthrough FUSE file system over a backing folder that fails with EIO on cue, as a dying disk
# does: test/support/faulty-fs.ts mounts it under the mirror's storage and writes the control file.
# Usage: faulty-fs.py BACKING MOUNTPOINT CONTROL. CONTROL absent or empty: every operation passes
# through; "write": operations that change the file system fail with EIO; "all": reads too.
import errno
import os
import sys

from fusepy import FUSE, FuseOSError, Operations


class Faulty(Operations):
    def __init__(self, backing, control):
        self.backing = backing
        self.control = control

    def _mode(self):
        try:
            with open(self.control) as f:
                return f.read().strip()
        except FileNotFoundError:
            return ""

    def _fail(self, kind):
        mode = self._mode()
        if mode == "all" or (mode == "write" and kind == "write"):
            raise FuseOSError(errno.EIO)

    def _path(self, path):
        return os.path.join(self.backing, path.lstrip("/"))

    # Reads and look-ups.
    def getattr(self, path, fh=None):
        self._fail("read")
        st = os.lstat(self._path(path))
        return {k: getattr(st, k) for k in ("st_atime", "st_ctime", "st_gid", "st_mode", "st_mtime", "st_nlink", "st_size", "st_uid")}

    def access(self, path, amode):
        if not os.access(self._path(path), amode):
            raise FuseOSError(errno.EACCES)

    def readdir(self, path, fh):
        self._fail("read")
        return [".", ".."] + os.listdir(self._path(path))

    def readlink(self, path):
        return os.readlink(self._path(path))

    def statfs(self, path):
        st = os.statvfs(self._path(path))
        return {k: getattr(st, k) for k in ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree", "f_files", "f_flag", "f_frsize", "f_namemax")}

    def open(self, path, flags):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_TRUNC):
            self._fail("write")
        else:
            self._fail("read")
        return os.open(self._path(path), flags)

    def read(self, path, size, offset, fh):
        self._fail("read")
        return os.pread(fh, size, offset)

    def release(self, path, fh):
        return os.close(fh)

    # Changes.
    def create(self, path, mode, fi=None):
        self._fail("write")
        return os.open(self._path(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)

    def write(self, path, data, offset, fh):
        self._fail("write")
        return os.pwrite(fh, data, offset)

    def truncate(self, path, length, fh=None):
        self._fail("write")
        with open(self._path(path), "r+") as f:
            f.truncate(length)

    def flush(self, path, fh):
        return os.fsync(fh)

    def fsync(self, path, datasync, fh):
        self._fail("write")
        return os.fsync(fh)

    def mkdir(self, path, mode):
        self._fail("write")
        return os.mkdir(self._path(path), mode)

    def rmdir(self, path):
        self._fail("write")
        return os.rmdir(self._path(path))

    def unlink(self, path):
        self._fail("write")
        return os.unlink(self._path(path))

    def rename(self, old, new):
        self._fail("write")
        return os.rename(self._path(old), self._path(new))

    def link(self, target, source):
        self._fail("write")
        return os.link(self._path(source), self._path(target))

    def symlink(self, target, source):
        self._fail("write")
        return os.symlink(source, self._path(target))

    def chmod(self, path, mode):
        self._fail("write")
        return os.chmod(self._path(path), mode)

    def chown(self, path, uid, gid):
        self._fail("write")
        return os.chown(self._path(path), uid, gid)

    def utimens(self, path, times=None):
        self._fail("write")
        return os.utime(self._path(path), times)


if __name__ == "__main__":
    backing, mountpoint, control = sys.argv[1:4]
    FUSE(Faulty(backing, control), mountpoint, foreground=True)
