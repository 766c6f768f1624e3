// Filesystems of a mounted snapshot: read-only loop devices over the served
// image files and read-only mounts (see mount.h), and CopyOut for
// `restore --file`.
//
// Loop devices: LOOP_CTL_GET_FREE, then LOOP_CONFIGURE with READ_ONLY |
// AUTOCLEAR | DIRECT_IO (the loop reads the FUSE file with O_DIRECT and
// several requests in flight, and its pages are not cached twice — once
// above in the filesystem, once in the FUSE file); the loop's fd stays open until mount(2) returned, so autoclear
// (which acts on the last close) detaches it exactly when its filesystem is
// unmounted, or at once when the mount failed. No udev here: a missing
// /dev/loopN node is made (block major 7).
#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <utility>
#include <vector>

#include "sparetime/base/fd.h"
#include "sparetime/ops/mount.h"

namespace sparetime::ops {
namespace {

// A read-only autoclear loop device over `image`; returns its open fd and path.
Result<std::pair<Fd, std::string>> AttachLoop(const std::string& image) {
  ST_ASSIGN_OR_RETURN(Fd backing, OpenFile(image, O_RDONLY | O_CLOEXEC, 0));
  ST_ASSIGN_OR_RETURN(Fd ctl, OpenFile("/dev/loop-control", O_RDWR | O_CLOEXEC, 0));
  for (int attempt = 0; attempt < 16; ++attempt) {
    int n = ::ioctl(ctl.get(), LOOP_CTL_GET_FREE);
    if (n < 0) return ErrnoStatus("find a free loop device (/dev/loop-control)", errno);
    std::string path = "/dev/loop" + std::to_string(n);
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 &&
        ::mknod(path.c_str(), S_IFBLK | 0660, makedev(7, static_cast<unsigned>(n))) != 0 &&
        errno != EEXIST) {
      return ErrnoStatus("create " + path, errno);
    }
    Result<Fd> loop = OpenFile(path, O_RDONLY | O_CLOEXEC, 0);
    if (!loop.ok()) return loop.status();
    struct loop_config cfg {};
    cfg.fd = static_cast<uint32_t>(backing.get());
    cfg.info.lo_flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR | LO_FLAGS_DIRECT_IO;
    std::strncpy(reinterpret_cast<char*>(cfg.info.lo_file_name), image.c_str(),
                 LO_NAME_SIZE - 1);
    if (::ioctl(loop->get(), LOOP_CONFIGURE, &cfg) == 0) {
      return std::make_pair(std::move(*loop), path);
    }
    if (errno != EBUSY) return ErrnoStatus("attach " + path + " to " + image, errno);
    // Someone else took it between GET_FREE and CONFIGURE: try the next.
  }
  return Unavailable("no free loop device for " + image + " after 16 tries");
}

}  // namespace

std::vector<FilesystemMount> MountFilesystems(const std::string& dir, const SnapshotImage& image) {
  std::vector<FilesystemMount> out;
  for (const ImageFile& f : image.files()) {
    if (f.fs.empty() || f.mount_dir.empty()) continue;
    FilesystemMount m;
    m.image = dir + "/" + f.name;
    m.dir = dir + "/" + f.mount_dir;
    m.fs = f.fs;
    Result<std::pair<Fd, std::string>> loop = AttachLoop(m.image);
    if (!loop.ok()) {
      m.status = loop.status();
      out.push_back(std::move(m));
      continue;
    }
    m.loop = loop->second;
    // Never a journal replay or log recovery: the image is read only.
    const char* data = f.fs == "xfs" ? "norecovery,nouuid" : "noload";
    if (::mount(m.loop.c_str(), m.dir.c_str(), f.fs.c_str(), MS_RDONLY | MS_NOSUID | MS_NODEV,
                data) != 0) {
      m.status = ErrnoStatus("mount " + f.fs + " of " + m.image + " (" + m.loop + ") at " + m.dir +
                                 " read-only (" + data + "); the image file stays available",
                             errno);
    }
    out.push_back(std::move(m));  // closing the loop's fd: autoclear from here on
  }
  return out;
}

namespace {

Status CopyXattrs(const std::string& from, const std::string& to) {
  ssize_t n = ::llistxattr(from.c_str(), nullptr, 0);
  if (n <= 0) return Status::Ok();  // none, or not supported there
  std::vector<char> names(static_cast<size_t>(n));
  n = ::llistxattr(from.c_str(), names.data(), names.size());
  if (n < 0) return ErrnoStatus("list xattrs of " + from, errno);
  for (size_t i = 0; i < static_cast<size_t>(n); i += std::strlen(&names[i]) + 1) {
    const char* name = &names[i];
    ssize_t len = ::lgetxattr(from.c_str(), name, nullptr, 0);
    if (len < 0) return ErrnoStatus(std::string("read xattr ") + name + " of " + from, errno);
    std::vector<char> value(static_cast<size_t>(len));
    len = ::lgetxattr(from.c_str(), name, value.data(), value.size());
    if (len < 0) return ErrnoStatus(std::string("read xattr ") + name + " of " + from, errno);
    if (::lsetxattr(to.c_str(), name, value.data(), static_cast<size_t>(len), 0) != 0) {
      return ErrnoStatus(std::string("set xattr ") + name + " on " + to, errno);
    }
  }
  return Status::Ok();
}

// Owner, xattrs, mode and times of `to` from `st` (times last: the rest
// would change ctime only, but writing into a directory changes its mtime).
Status CopyMetadata(const std::string& from, const std::string& to, const struct stat& st) {
  if (::lchown(to.c_str(), st.st_uid, st.st_gid) != 0) return ErrnoStatus("chown " + to, errno);
  ST_RETURN_IF_ERROR(CopyXattrs(from, to));
  if (!S_ISLNK(st.st_mode) && ::chmod(to.c_str(), st.st_mode & 07777) != 0) {
    return ErrnoStatus("chmod " + to, errno);
  }
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  if (::utimensat(AT_FDCWD, to.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
    return ErrnoStatus("set times of " + to, errno);
  }
  return Status::Ok();
}

Status CopyFileData(const std::string& from, const std::string& to, uint64_t* bytes) {
  ST_ASSIGN_OR_RETURN(Fd in, OpenFile(from, O_RDONLY | O_CLOEXEC, 0));
  ST_ASSIGN_OR_RETURN(Fd out, OpenFile(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  std::vector<char> buf(1 << 20);
  for (;;) {
    ssize_t n = ::read(in.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus("read " + from, errno);
    if (n == 0) break;
    for (ssize_t done = 0; done < n;) {
      ssize_t w = ::write(out.get(), buf.data() + done, static_cast<size_t>(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return ErrnoStatus("write " + to, errno);
      done += w;
    }
    *bytes += static_cast<uint64_t>(n);
  }
  if (::fsync(out.get()) != 0) return ErrnoStatus("sync " + to, errno);
  return Status::Ok();
}

// Copied files with more than one link, by (device, inode): their first
// copy, so later names become hard links to it.
using LinkMap = std::map<std::pair<dev_t, ino_t>, std::string>;

Status CopyTree(const std::string& from, const std::string& to, CopyReport& r, LinkMap& links) {
  struct stat st {};
  if (::lstat(from.c_str(), &st) != 0) return ErrnoStatus(from, errno);
  if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
    auto [it, first] = links.try_emplace({st.st_dev, st.st_ino}, to);
    if (!first) {
      // Another name of an inode already copied: one inode here too (its
      // data, owner, mode and times came with the first name).
      if (::link(it->second.c_str(), to.c_str()) != 0) {
        return ErrnoStatus("link " + to + " to " + it->second, errno);
      }
      ++r.hardlinks;
      return Status::Ok();
    }
  }
  if (S_ISDIR(st.st_mode)) {
    if (::mkdir(to.c_str(), 0700) != 0) return ErrnoStatus("create directory " + to, errno);
    DIR* d = ::opendir(from.c_str());
    if (d == nullptr) return ErrnoStatus("read directory " + from, errno);
    std::vector<std::string> names;
    while (struct dirent* e = ::readdir(d)) {
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
        names.emplace_back(e->d_name);
      }
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());  // the first name of a hard-linked inode is the same every time
    for (const std::string& n : names) {
      ST_RETURN_IF_ERROR(CopyTree(from + "/" + n, to + "/" + n, r, links));
    }
    ++r.dirs;
  } else if (S_ISREG(st.st_mode)) {
    ST_RETURN_IF_ERROR(CopyFileData(from, to, &r.bytes));
    ++r.files;
  } else if (S_ISLNK(st.st_mode)) {
    std::vector<char> target(static_cast<size_t>(st.st_size) + 1);
    ssize_t n = ::readlink(from.c_str(), target.data(), target.size());
    if (n < 0) return ErrnoStatus("read link " + from, errno);
    if (::symlink(std::string(target.data(), static_cast<size_t>(n)).c_str(), to.c_str()) != 0) {
      return ErrnoStatus("create link " + to, errno);
    }
    ++r.symlinks;
  } else {
    if (::mknod(to.c_str(), st.st_mode, st.st_rdev) != 0) return ErrnoStatus("create " + to, errno);
    ++r.files;
  }
  return CopyMetadata(from, to, st);
}

}  // namespace

Result<CopyReport> CopyOut(const std::string& source, const std::string& dest) {
  struct stat st {};
  if (::lstat(source.c_str(), &st) != 0) {
    if (errno == ENOENT) return NotFound(source + " is not in the snapshot");
    return ErrnoStatus(source, errno);
  }
  if (::lstat(dest.c_str(), &st) == 0 || errno != ENOENT) {
    return AlreadyExists(dest + " exists; name a new path (nothing is overwritten)");
  }
  CopyReport r;
  LinkMap links;
  Status s = CopyTree(source, dest, r, links);
  if (!s.ok()) return s.WithContext("copy " + source + " to " + dest);
  return r;
}

}  // namespace sparetime::ops
