// Filesystem allocation (see fs_allocation.h for the invariants).
//
// Every probe here only reads: GETFSMAP is a query, libext2fs opens the
// filesystem without EXT2_FLAG_RW, xfs_db runs with -r. A probe that fails
// in any way turns into "unknown" with its reason; nothing here returns an
// error to the backup, which then reads every block of that range.
#include "sparetime/imaging/fs_allocation.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <linux/fsmap.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <spawn.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

extern "C" {  // com_err's header has no C++ guards of its own
#include <et/com_err.h>
}
#include <ext2fs/ext2fs.h>

#include "sparetime/imaging/partition_table.h"

extern char** environ;

namespace sparetime {
namespace {

namespace fs = std::filesystem;

Allocation Unknown(std::string why) {
  Allocation a;
  a.how = why;
  a.notices.push_back(std::move(why));
  return a;
}

// Turns the free ranges (relative to the filesystem, any order) of a
// filesystem of `length` bytes at `offset` into its allocated ranges.
std::vector<ByteRange> Complement(std::vector<ByteRange> free, uint64_t offset, uint64_t length) {
  std::sort(free.begin(), free.end(),
            [](const ByteRange& a, const ByteRange& b) { return a.offset < b.offset; });
  std::vector<ByteRange> used;
  uint64_t pos = 0;
  for (const ByteRange& f : free) {
    uint64_t begin = std::min(f.offset, length), end = std::min(f.offset + f.length, length);
    if (begin > pos) used.push_back({offset + pos, begin - pos});
    pos = std::max(pos, end);
  }
  if (pos < length) used.push_back({offset + pos, length - pos});
  return used;
}

void Append(std::vector<ByteRange>& out, ByteRange r) {
  if (r.length == 0) return;
  if (!out.empty() && out.back().offset + out.back().length >= r.offset) {
    uint64_t end = std::max(out.back().offset + out.back().length, r.offset + r.length);
    out.back().length = end - out.back().offset;
    return;
  }
  out.push_back(r);
}

std::string ReadSmallFile(const std::string& path) {
  std::ifstream in(path);
  std::string s;
  std::getline(in, s);
  return s;
}

// /proc/self/mountinfo escapes blanks, tabs, newlines and backslashes as \ooo.
std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 3), nullptr, 8));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

// The mount point and filesystem type of block device `rdev`, if mounted in
// this mount namespace: by major:minor, or by its /dev node as the mount
// source (btrfs reports an anonymous device number).
std::optional<std::pair<std::string, std::string>> FindMount(uint64_t rdev, const std::string& node) {
  std::ifstream in("/proc/self/mountinfo");
  const std::string want = std::to_string(major(rdev)) + ":" + std::to_string(minor(rdev));
  for (std::string line; std::getline(in, line);) {
    std::istringstream f(line);
    std::string id, parent, devno, root, point, word;
    f >> id >> parent >> devno >> root >> point;
    while (f >> word && word != "-") {}
    std::string type, source;
    f >> type >> source;
    if (devno == want || (!node.empty() && Unescape(source) == node)) {
      return std::make_pair(Unescape(point), type);
    }
  }
  return std::nullopt;
}

// The loop device whose backing file is `real_path` at `offset`, or 0.
uint64_t LoopForFile(const std::string& real_path, uint64_t offset) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/sys/block", ec)) {
    const std::string dir = e.path().string();
    if (e.path().filename().string().rfind("loop", 0) != 0) continue;
    std::string backing = ReadSmallFile(dir + "/loop/backing_file");
    if (backing.empty() || backing != real_path) continue;
    if (std::strtoull(ReadSmallFile(dir + "/loop/offset").c_str(), nullptr, 10) != offset) continue;
    unsigned maj = 0, min = 0;
    if (std::sscanf(ReadSmallFile(dir + "/dev").c_str(), "%u:%u", &maj, &min) == 2) {
      return makedev(maj, min);
    }
  }
  return 0;
}

// The kernel's device for partition `number` of whole disk `disk`, or 0.
uint64_t PartitionDevice(uint64_t disk, uint32_t number) {
  std::error_code ec;
  const std::string sys =
      "/sys/dev/block/" + std::to_string(major(disk)) + ":" + std::to_string(minor(disk));
  for (const auto& e : fs::directory_iterator(sys, ec)) {
    const std::string dir = e.path().string();
    if (ReadSmallFile(dir + "/partition") != std::to_string(number)) continue;
    unsigned maj = 0, min = 0;
    if (std::sscanf(ReadSmallFile(dir + "/dev").c_str(), "%u:%u", &maj, &min) == 2) {
      return makedev(maj, min);
    }
  }
  return 0;
}

// /dev/<name> of block device `rdev` when that node exists, else "".
std::string DevicePath(uint64_t rdev) {
  const std::string uevent =
      "/sys/dev/block/" + std::to_string(major(rdev)) + ":" + std::to_string(minor(rdev)) + "/uevent";
  std::ifstream in(uevent);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("DEVNAME=", 0) != 0) continue;
    std::string path = "/dev/" + line.substr(8);
    struct stat st {};
    if (stat(path.c_str(), &st) == 0 && S_ISBLK(st.st_mode) && st.st_rdev == rdev) return path;
  }
  return "";
}

// What the first 68 KiB say the filesystem is: "ext", "xfs", "btrfs",
// "vfat", or "" when none of these.
std::string Sniff(const std::string& path, uint64_t offset) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  std::vector<unsigned char> b(68 * 1024, 0);
  ssize_t n = pread(fd, b.data(), b.size(), static_cast<off_t>(offset));
  close(fd);
  if (n < 2048) return "";
  if (b[1024 + 56] == 0x53 && b[1024 + 57] == 0xEF) return "ext";
  if (std::memcmp(b.data(), "XFSB", 4) == 0) return "xfs";
  if (n >= 65536 + 72 && std::memcmp(&b[65536 + 64], "_BHRfS_M", 8) == 0) return "btrfs";
  if (std::memcmp(&b[0x36], "FAT", 3) == 0 || std::memcmp(&b[0x52], "FAT32", 5) == 0) {
    return "vfat";
  }
  return "";
}

// Runs argv, returns its stdout when it exits 0.
Result<std::string> RunTool(const std::vector<std::string>& args) {
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) return IoError("pipe failed");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(pipefd[1]);
  if (rc != 0) {
    close(pipefd[0]);
    return NotFound(args[0] + " could not be started (" + std::strerror(rc) + ")");
  }
  std::string out;
  char buf[65536];
  for (ssize_t n; (n = read(pipefd[0], buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(pipefd[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return IoError(args[0] + " failed (exit status " + std::to_string(WEXITSTATUS(status)) + ")");
  }
  return out;
}

// GETFSMAP on the mount point: the free records of the data device.
Allocation ByFsmap(const std::string& point, const std::string& type, uint64_t offset,
                   uint64_t length) {
  const std::string where = type + " mounted at " + point;
  int fd = open(point.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Unknown(where + ": cannot open the mount point (" + std::strerror(errno) + ")");
  struct stat st {};
  fstat(fd, &st);
  const uint32_t dev = static_cast<uint32_t>((minor(st.st_dev) & 0xff) | (major(st.st_dev) << 8) |
                                             ((minor(st.st_dev) & ~0xffu) << 12));
  constexpr unsigned kRecs = 1024;
  std::vector<std::byte> mem(sizeof(fsmap_head) + kRecs * sizeof(fsmap));
  auto* head = reinterpret_cast<fsmap_head*>(mem.data());
  head->fmh_count = kRecs;
  head->fmh_keys[1].fmr_device = UINT32_MAX;
  head->fmh_keys[1].fmr_flags = UINT32_MAX;
  head->fmh_keys[1].fmr_physical = head->fmh_keys[1].fmr_owner = UINT64_MAX;
  head->fmh_keys[1].fmr_offset = UINT64_MAX;
  std::vector<ByteRange> free;
  for (;;) {
    if (ioctl(fd, FS_IOC_GETFSMAP, head) != 0) {
      int err = errno;
      close(fd);
      return Unknown(where + ": GETFSMAP not supported (" + std::strerror(err) + ")");
    }
    if (head->fmh_entries == 0) break;
    for (unsigned i = 0; i < head->fmh_entries; ++i) {
      const fsmap& r = head->fmh_recs[i];
      if (r.fmr_device == dev && r.fmr_owner == FMR_OWN_FREE) {
        free.push_back({r.fmr_physical, r.fmr_length});
      }
    }
    if (head->fmh_recs[head->fmh_entries - 1].fmr_flags & FMR_OF_LAST) break;
    fsmap_advance(head);
  }
  close(fd);
  Allocation a;
  a.known = true;
  a.how = where + " (GETFSMAP)";
  a.ranges = Complement(std::move(free), offset, length);
  return a;
}

Allocation ByExt2fs(const std::string& path, uint64_t offset, uint64_t length) {
  static const bool tables = [] {
    initialize_ext2_error_table();
    return true;
  }();
  (void)tables;
  const std::string io_options = offset ? "offset=" + std::to_string(offset) : "";
  ext2_filsys efs = nullptr;
  errcode_t err = ext2fs_open2(path.c_str(), io_options.empty() ? nullptr : io_options.c_str(),
                               EXT2_FLAG_64BITS | EXT2_FLAG_SKIP_MMP, 0, 0, unix_io_manager, &efs);
  if (err) return Unknown(std::string("ext4: libext2fs cannot open it (") + error_message(err) + ")");
  struct Closer {
    ext2_filsys f;
    ~Closer() { ext2fs_close_free(&f); }
  } closer{efs};
  if (ext2fs_has_feature_journal_needs_recovery(efs->super)) {
    return Unknown("ext4: its journal needs recovery (not cleanly unmounted, or a snapshot of "
                   "a mounted filesystem): the replay may use blocks the bitmaps call free");
  }
  if (efs->super->s_state & EXT2_ERROR_FS) {
    return Unknown("ext4: the filesystem is marked with errors; run e2fsck to trust its bitmaps");
  }
  if (ext2fs_has_feature_journal_dev(efs->super)) {
    return Unknown("ext4: an external journal device, not a filesystem");
  }
  err = ext2fs_read_block_bitmap(efs);
  if (err) {
    return Unknown(std::string("ext4: its block bitmap cannot be read (") + error_message(err) +
                   "); run e2fsck -f");
  }
  const uint64_t bs = efs->blocksize, first = efs->super->s_first_data_block;
  const uint64_t count = ext2fs_blocks_count(efs->super);
  if (count * bs > length) {
    return Unknown("ext4: the superblock says " + std::to_string(count * bs) +
                   " bytes, more than the " + std::to_string(length) + " bytes it lies in");
  }
  std::vector<ByteRange> free;
  for (blk64_t pos = first; pos < count;) {
    blk64_t zero = 0, set = 0;
    if (ext2fs_find_first_zero_block_bitmap2(efs->block_map, pos, count - 1, &zero) != 0) break;
    if (ext2fs_find_first_set_block_bitmap2(efs->block_map, zero, count - 1, &set) != 0) {
      set = count;
    }
    free.push_back({zero * bs, (set - zero) * bs});
    pos = set;
  }
  Allocation a;
  a.known = true;
  a.how = "ext4, not mounted (libext2fs block bitmaps)";
  a.ranges = Complement(std::move(free), offset, length);
  return a;
}

uint64_t Field(const std::string& out, const std::string& name) {
  size_t at = out.find(name + " = ");
  return at == std::string::npos ? 0 : std::strtoull(out.c_str() + at + name.size() + 3, nullptr, 10);
}

Allocation ByXfsDb(const std::string& path, uint64_t length) {
  Result<std::string> log = RunTool({"xfs_logprint", "-t", path});
  if (!log.ok()) return Unknown("xfs: " + log.status().message() + " (is xfsprogs installed?)");
  if (log->find("<CLEAN>") == std::string::npos) {
    return Unknown("xfs: its log is dirty (not cleanly unmounted): the replay may use blocks "
                   "the free-space btrees call free");
  }
  Result<std::string> out = RunTool({"xfs_db", "-r", "-c", "sb 0", "-c",
                                     "p blocksize dblocks agblocks agcount", "-c", "freesp -d",
                                     path});
  if (!out.ok()) return Unknown("xfs: " + out.status().message());
  const uint64_t bs = Field(*out, "blocksize"), dblocks = Field(*out, "dblocks");
  const uint64_t agblocks = Field(*out, "agblocks"), agcount = Field(*out, "agcount");
  if (bs == 0 || agblocks == 0 || dblocks * bs > length) {
    return Unknown("xfs: xfs_db gave no usable superblock (blocksize " + std::to_string(bs) +
                   ", dblocks " + std::to_string(dblocks) + ")");
  }
  std::vector<ByteRange> free;
  std::istringstream lines(*out);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream f(line);
    uint64_t agno, agbno, len;
    std::string extra;
    if (!(f >> agno >> agbno >> len) || (f >> extra)) continue;
    if (agno >= agcount || agbno + len > agblocks) {
      return Unknown("xfs: xfs_db listed a free extent outside its AG (" + line + ")");
    }
    free.push_back({(agno * agblocks + agbno) * bs, len * bs});
  }
  Allocation a;
  a.known = true;
  a.how = "xfs, not mounted (xfs_db free-space btrees)";
  a.ranges = Complement(std::move(free), 0, length);
  return a;
}

}  // namespace

uint64_t Allocation::AllocatedBytes() const {
  uint64_t n = 0;
  for (const ByteRange& r : ranges) n += r.length;
  return n;
}

bool AnyAllocated(const std::vector<ByteRange>& ranges, uint64_t offset, uint64_t length) {
  // The first range that ends after `offset`.
  auto it = std::upper_bound(ranges.begin(), ranges.end(), offset,
                             [](uint64_t off, const ByteRange& r) { return off < r.offset + r.length; });
  return it != ranges.end() && it->offset < offset + length;
}

void ZeroUnallocated(const std::vector<ByteRange>& ranges, uint64_t offset,
                     std::span<std::byte> data) {
  const uint64_t end = offset + data.size();
  uint64_t pos = offset;  // bytes before pos are settled
  auto it = std::upper_bound(ranges.begin(), ranges.end(), offset,
                             [](uint64_t off, const ByteRange& r) { return off < r.offset + r.length; });
  for (; it != ranges.end() && it->offset < end && pos < end; ++it) {
    if (it->offset > pos) std::memset(data.data() + (pos - offset), 0, it->offset - pos);
    pos = std::max(pos, std::min(end, it->offset + it->length));
  }
  if (pos < end) std::memset(data.data() + (pos - offset), 0, end - pos);
}

Allocation FilesystemAllocation(const std::string& path, uint64_t offset, uint64_t length,
                                uint64_t rdev) {
  if (rdev == 0) {
    struct stat st {};
    if (stat(path.c_str(), &st) == 0 && S_ISBLK(st.st_mode) && offset == 0) rdev = st.st_rdev;
    if (stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      std::error_code ec;
      rdev = LoopForFile(fs::canonical(path, ec).string(), offset);
    }
  }
  if (rdev != 0) {
    const std::string node = DevicePath(rdev);
    if (auto mount = FindMount(rdev, node)) {
      if (mount->second == "ext4" || mount->second == "xfs") {
        return ByFsmap(mount->first, mount->second, offset, length);
      }
      return Unknown(mount->second + " mounted at " + mount->first +
                     ": GETFSMAP knows only ext4 and xfs; reading every block");
    }
    // Mounted in another mount namespace (or held by something else): the
    // on-disk bitmaps may lag what it writes.
    if (!node.empty()) {
      int fd = open(node.c_str(), O_RDONLY | O_EXCL | O_CLOEXEC);
      if (fd < 0 && errno == EBUSY) {
        return Unknown(node + " is in use (mounted elsewhere?): reading every block");
      }
      if (fd >= 0) close(fd);
    }
  }
  const std::string type = Sniff(path, offset);
  if (type == "ext") return ByExt2fs(path, offset, length);
  if (type == "xfs") {
    if (offset == 0) return ByXfsDb(path, length);
    std::string node = rdev ? DevicePath(rdev) : "";
    if (node.empty()) {
      return Unknown("xfs inside a disk image without a partition device (attach it with "
                     "losetup -P to skip its free space): reading every block");
    }
    Allocation a = ByXfsDb(node, length);
    for (ByteRange& r : a.ranges) r.offset += offset;
    return a;
  }
  if (type.empty()) return Unknown("no ext4 or xfs filesystem found: reading every block");
  return Unknown(type + ": not a filesystem whose free space sparetime reads; reading every block");
}

Allocation FindAllocation(const std::string& path, uint64_t size) {
  struct stat st {};
  uint64_t disk = 0;
  if (stat(path.c_str(), &st) == 0 && S_ISBLK(st.st_mode)) {
    disk = st.st_rdev;
    const std::string sys = "/sys/dev/block/" + std::to_string(major(disk)) + ":" +
                            std::to_string(minor(disk)) + "/partition";
    if (!ReadSmallFile(sys).empty()) return FilesystemAllocation(path, 0, size, disk);
  } else {
    std::error_code ec;
    disk = LoopForFile(fs::canonical(path, ec).string(), 0);
  }
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Unknown(path + ": cannot open (" + std::strerror(errno) + ")");
  Result<PartitionTable> table = ReadPartitionTable(
      [fd](uint64_t offset, std::span<std::byte> out) -> Status {
        ssize_t n = pread(fd, out.data(), out.size(), static_cast<off_t>(offset));
        if (n != static_cast<ssize_t>(out.size())) return IoError("short read");
        return Status::Ok();
      },
      size);
  close(fd);
  if (!table.ok()) {
    return Unknown("partition table: " + table.status().message() + "; reading every block");
  }
  if (table->scheme == PartitionTable::Scheme::kNone || table->partitions.empty()) {
    return FilesystemAllocation(path, 0, size, disk);
  }
  std::vector<Partition> parts = table->partitions;
  std::sort(parts.begin(), parts.end(),
            [](const Partition& a, const Partition& b) { return a.offset < b.offset; });
  Allocation all;
  all.known = true;
  all.how = std::string(SchemeName(table->scheme)) + " with " + std::to_string(parts.size()) +
            " partitions";
  uint64_t pos = 0;
  for (const Partition& p : parts) {
    Append(all.ranges, {pos, p.offset - pos});  // table areas and gaps: read whole
    uint64_t part_dev = disk ? PartitionDevice(disk, p.number) : 0;
    Allocation sub = FilesystemAllocation(path, p.offset, p.size, part_dev);
    const std::string name = "partition " + std::to_string(p.number);
    if (sub.known) {
      for (const ByteRange& r : sub.ranges) Append(all.ranges, r);
      all.how += "; " + name + ": " + sub.how;
    } else {
      Append(all.ranges, {p.offset, p.size});
      all.how += "; " + name + ": every block";
      all.notices.push_back(name + ": " + sub.how);
    }
    pos = p.offset + p.size;
  }
  Append(all.ranges, {pos, size - pos});
  return all;
}

}  // namespace sparetime
