// Mount use cases: the snapshot as images, mount points, stale mounts and
// `umount` (see mount.h). Loop devices, filesystem mounts and the copy of
// `restore --file` are in mount_fs.cc.
#include "sparetime/ops/mount.h"

#include <dirent.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "sparetime/imaging/manifest.h"
#include "sparetime/ops/snapshots.h"

namespace sparetime::ops {
namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      out += static_cast<char>(std::strtol(s.substr(i + 1, 3).c_str(), nullptr, 8));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

struct MountLine {
  std::string dir, fstype, source;
};

std::vector<MountLine> ReadMountInfo() {
  std::vector<MountLine> out;
  std::ifstream in("/proc/self/mountinfo");
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, dir, word;
    fields >> id >> parent >> dev >> root >> dir;
    while (fields >> word && word != "-") {
    }
    MountLine m;
    m.dir = Unescape(dir);
    fields >> m.fstype >> m.source;
    m.source = Unescape(m.source);
    out.push_back(std::move(m));
  }
  return out;
}

// The absolute, canonical form of `dir` without touching `dir` itself (a
// dead FUSE mount fails every stat with ENOTCONN): its parent is resolved.
std::string Canonical(const std::string& dir) {
  std::string d = dir;
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  size_t slash = d.rfind('/');
  std::string parent = slash == std::string::npos ? "." : (slash == 0 ? "/" : d.substr(0, slash));
  std::string base = slash == std::string::npos ? d : d.substr(slash + 1);
  char buf[PATH_MAX];
  if (::realpath(parent.c_str(), buf) == nullptr) return d;
  std::string p = buf;
  return p == "/" ? "/" + base : p + "/" + base;
}

// A process that exists and is no zombie (a killed server whose parent
// has not reaped it is gone for our purposes).
bool Alive(int pid) {
  if (pid <= 0) return false;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  size_t paren = line.rfind(')');
  if (paren == std::string::npos || paren + 2 >= line.size()) return false;
  char state = line[paren + 2];
  return state != 'Z' && state != 'X';
}

}  // namespace

Result<size_t> SnapshotImage::ReadAt(const ImageFile& file, uint64_t offset,
                                     std::span<std::byte> out) {
  if (offset >= file.size) return size_t{0};
  uint64_t n = std::min<uint64_t>(out.size(), file.size - offset);
  return reader_->ReadAt(file.offset + offset, out.first(n));
}

std::string RecogniseFilesystem(SnapshotImage& image, const ImageFile& file) {
  std::byte sb[2048];
  Result<size_t> n = image.ReadAt(file, 0, sb);
  if (!n.ok() || *n < sizeof sb) return "";
  if (sb[1024 + 56] == std::byte{0x53} && sb[1024 + 57] == std::byte{0xEF}) return "ext4";
  if (std::memcmp(sb, "XFSB", 4) == 0) return "xfs";
  return "";
}

Result<std::unique_ptr<SnapshotImage>> OpenSnapshotImage(Backups& backups,
                                                         const MountRequest& r) {
  ST_ASSIGN_OR_RETURN(Snapshot snap, FindSnapshot(backups, r.snapshot, r.device));
  Result<Manifest> manifest = LoadManifest(snap.manifest_root, backups.codec(), backups.source());
  if (!manifest.ok()) return manifest.status().WithContext("snapshot " + snap.id);
  ST_RETURN_IF_ERROR(backups.Prepare(manifest->chunks));
  SnapshotReaderOptions options;
  options.cache_bytes = r.cache_bytes;
  options.readahead_chunks = r.readahead_chunks;
  options.fetch_threads = r.fetch_threads;
  if (r.on_damage) {
    auto log = r.on_damage;
    options.on_damage = [log](uint64_t offset, const ChunkId&, const Status& st) { log(offset, st); };
  }
  auto reader = std::make_unique<SnapshotReader>(std::move(*manifest), backups.codec(),
                                                 backups.source(), std::move(options));
  auto image = std::make_unique<SnapshotImage>(snap, std::move(reader));
  const uint64_t size = image->reader().size();
  image->files_.push_back({.name = "disk.img", .offset = 0, .size = size, .fs = "", .mount_dir = ""});
  SnapshotReader& rd = image->reader();
  auto read = [&rd](uint64_t offset, std::span<std::byte> out) -> Status {
    Result<size_t> n = rd.ReadAt(offset, out);
    if (!n.ok()) return n.status();
    if (*n != out.size()) return Corruption("read past the end of the image at " + std::to_string(offset));
    return Status::Ok();
  };
  Result<PartitionTable> table = ReadPartitionTable(read, size);
  if (!table.ok()) {
    image->table_error_ = table.status();
  } else {
    image->table_ = *table;
    for (const Partition& p : table->partitions) {
      std::string n = "part" + std::to_string(p.number);
      image->files_.push_back({.name = n + ".img", .offset = p.offset, .size = p.size, .fs = "", .mount_dir = n});
    }
  }
  for (ImageFile& f : image->files_) {
    // The whole disk's filesystem only when it has no partitions.
    if (f.name == "disk.img" && image->files_.size() > 1) continue;
    f.fs = RecogniseFilesystem(*image, f);
    if (f.fs.empty()) {
      f.mount_dir.clear();
    } else if (f.name == "disk.img") {
      f.mount_dir = "disk";
    }
  }
  return image;
}

std::optional<MountInfo> FindSparetimeMount(const std::string& dir) {
  const std::string want = Canonical(dir);
  std::optional<MountInfo> found;
  for (const MountLine& m : ReadMountInfo()) {
    if (m.dir != want || m.fstype != "fuse.sparetime") continue;
    MountInfo info;
    info.dir = m.dir;
    if (m.source.rfind("sparetime:", 0) == 0) info.pid = std::atoi(m.source.c_str() + 10);
    info.alive = Alive(info.pid);
    found = info;  // the last one is the top of the stack
  }
  return found;
}

Result<std::vector<std::string>> UnmountBelow(const std::string& dir) {
  const std::string top = Canonical(dir);
  std::vector<std::string> below;
  for (const MountLine& m : ReadMountInfo()) {
    if (m.dir.size() > top.size() + 1 && m.dir.compare(0, top.size() + 1, top + "/") == 0) {
      below.push_back(m.dir);
    }
  }
  // Deepest (longest) first; a path mounted twice is unmounted twice.
  std::stable_sort(below.begin(), below.end(),
                   [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  std::vector<std::string> done;
  for (const std::string& d : below) {
    if (::umount2(d.c_str(), 0) != 0 && ::umount2(d.c_str(), MNT_DETACH) != 0) {
      return ErrnoStatus("unmount " + d, errno);
    }
    done.push_back(d);
  }
  return done;
}

namespace {

// Unmounts everything at and below a stale mount at `dir`.
Result<std::vector<std::string>> CleanStale(const std::string& dir) {
  ST_ASSIGN_OR_RETURN(std::vector<std::string> done, UnmountBelow(dir));
  const std::string top = Canonical(dir);
  if (::umount2(top.c_str(), MNT_DETACH) != 0) return ErrnoStatus("unmount " + top, errno);
  done.push_back(top);
  return done;
}

}  // namespace

Status PrepareMountPoint(const std::string& dir, bool* cleaned) {
  *cleaned = false;
  if (std::optional<MountInfo> m = FindSparetimeMount(dir)) {
    if (m->alive) {
      return AlreadyExists(dir + " is already a sparetime mount (served by process " +
                           std::to_string(m->pid) + "); run `sparetime umount " + dir +
                           "` first or pick another directory");
    }
    ST_RETURN_IF_ERROR(CleanStale(dir).status());
    *cleaned = true;
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno == ENOENT) {
      return NotFound("mount point " + dir + " does not exist; create it (mkdir -p " + dir + ")");
    }
    return ErrnoStatus("mount point " + dir, errno);
  }
  if (!S_ISDIR(st.st_mode)) {
    return InvalidArgument("mount point " + dir + " is not a directory; name an empty directory");
  }
  const std::string canon = Canonical(dir);
  for (const MountLine& m : ReadMountInfo()) {
    if (m.dir == canon) {
      return AlreadyExists(dir + " is already a mount point (" + m.fstype + " from " + m.source +
                           "); unmount it first or pick another directory");
    }
  }
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return ErrnoStatus("read mount point " + dir, errno);
  bool empty = true;
  while (struct dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
      empty = false;
      break;
    }
  }
  ::closedir(d);
  if (!empty) {
    return FailedPrecondition("mount point " + dir +
                              " is not empty (a mount would hide its files); use an empty directory");
  }
  return Status::Ok();
}

Result<UnmountReport> Unmount(const std::string& dir, std::chrono::milliseconds wait) {
  std::optional<MountInfo> m = FindSparetimeMount(dir);
  if (!m) {
    return NotFound(dir + " is not a sparetime mount (see /proc/self/mountinfo: no fuse.sparetime "
                          "mount there)");
  }
  UnmountReport report;
  report.pid = m->pid;
  if (m->alive) {
    if (::kill(m->pid, SIGTERM) != 0) return ErrnoStatus("signal process " + std::to_string(m->pid), errno);
    report.signalled = true;
    const auto deadline = std::chrono::steady_clock::now() + wait;
    while (std::chrono::steady_clock::now() < deadline) {
      std::optional<MountInfo> now = FindSparetimeMount(dir);
      if (!now || now->pid != m->pid) return report;
      if (!Alive(m->pid)) break;  // it died without unmounting: clean below
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (Alive(m->pid)) {
      return Unavailable("process " + std::to_string(m->pid) + " serving " + dir +
                         " did not unmount within " + std::to_string(wait.count() / 1000) +
                         " s; files under it may be in use (see fuser -m " + dir + ")");
    }
  }
  report.stale = true;
  ST_ASSIGN_OR_RETURN(report.unmounted, CleanStale(dir));
  return report;
}

}  // namespace sparetime::ops
