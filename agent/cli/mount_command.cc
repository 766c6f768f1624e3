// mount / umount / restore --file (see mount_command.h). A MountSession is
// the whole mount: the open backups (their lock held shared), the snapshot
// image, the FUSE server and the filesystems under it; its destructor
// unmounts in reverse order, so Ctrl-C, SIGTERM (what `umount` sends) and
// every error path leave nothing mounted.
#include "mount_command.h"

#include <malloc.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "exit_codes.h"
#include "format.h"
#include "open_backups.h"
#include "sparetime/fusefs/image_fs.h"
#include "sparetime/ops/mount.h"

namespace sparetime::cli {
namespace {

class MountSession {
 public:
  ~MountSession() { Close(); }

  // Opens, serves and (with `filesystems`) mounts; on failure prints the
  // error and sets *rc.
  bool Open(const GlobalOptions& g, const std::string& snapshot, const std::string& device,
            const std::string& dir, bool filesystems, uint64_t cache_mib, uint32_t hold_seconds,
            int* rc) {
    dir_ = dir;
    // Two malloc arenas for the ~20 FUSE and fetch threads: with one arena
    // per thread each keeps its own high-water mark of freed chunk buffers
    // (KeepChunkBuffers turns trimming off), and peak RSS was the cache plus
    // ~130 MiB; with two it is the cache plus ~27 MiB at the same speed
    // (docs/performance.md "Mount").
    ::mallopt(M_ARENA_MAX, 2);
    auto backups = OpenBackups(g, rc);
    if (!backups.ok()) return false;
    backups_ = std::move(*backups);
    bool cleaned = false;
    if (Status s = ops::PrepareMountPoint(dir, &cleaned); !s.ok()) {
      *rc = Fail(s, Stage::kWork);
      return false;
    }
    if (cleaned && !g.quiet) {
      std::fprintf(stderr, "sparetime: cleaned a stale mount at %s (its process was gone)\n",
                   dir.c_str());
    }
    ops::MountRequest request;
    request.snapshot = snapshot;
    request.device = device;
    request.cache_bytes = cache_mib << 20;
    request.on_damage = [](uint64_t offset, const Status& st) {
      std::fprintf(stderr, "sparetime: damaged data at image offset %llu (reads of it fail with EIO): %s\n",
                   static_cast<unsigned long long>(offset), st.message().c_str());
    };
    Result<std::unique_ptr<ops::SnapshotImage>> image =
        ops::OpenSnapshotImage(*backups_, request);
    if (!image.ok()) {
      *rc = Fail(image.status(), Stage::kWork);
      return false;
    }
    image_ = std::move(*image);
    // Another host's backups: hold the snapshot on the peers, so that
    // host's prune frees nothing under the mount (ops/mount.h).
    hold_ = ops::SnapshotHold::Start(
        *backups_, image_->snapshot().id, std::chrono::seconds(hold_seconds),
        [quiet = g.quiet](const std::string& line) {
          if (!quiet) std::fprintf(stderr, "sparetime: warning: %s\n", line.c_str());
        });
    fusefs::Tree tree;
    tree.mtime = image_->snapshot().time;
    for (const ops::ImageFile& f : image_->files()) {
      ops::SnapshotImage* img = image_.get();
      tree.files.push_back({f.name, f.size, [img, f](uint64_t off, std::span<std::byte> out) {
                              return img->ReadAt(f, off, out);
                            }});
      if (filesystems && !f.mount_dir.empty()) tree.dirs.push_back(f.mount_dir);
    }
    Result<std::unique_ptr<fusefs::ImageFs>> fs = fusefs::ImageFs::Start(dir, std::move(tree));
    if (!fs.ok()) {
      *rc = Fail(fs.status(), Stage::kWork);
      return false;
    }
    fs_ = std::move(*fs);
    if (filesystems) mounts_ = ops::MountFilesystems(dir, *image_);
    return true;
  }

  void Close() {
    if (!fs_) return;
    Result<std::vector<std::string>> below = ops::UnmountBelow(dir_);
    if (!below.ok()) Fail(below.status(), Stage::kWork);
    fs_->Stop();
    fs_.reset();
  }

  const ops::SnapshotImage& image() const { return *image_; }
  const std::vector<ops::FilesystemMount>& mounts() const { return mounts_; }
  bool serving() const { return fs_ && fs_->serving(); }

 private:
  std::string dir_;
  std::unique_ptr<ops::Backups> backups_;
  std::unique_ptr<ops::SnapshotImage> image_;
  std::unique_ptr<ops::SnapshotHold> hold_;  // dropped before the backups close
  std::unique_ptr<fusefs::ImageFs> fs_;
  std::vector<ops::FilesystemMount> mounts_;
};

void PrintMounted(const GlobalOptions& g, const std::string& dir, const MountSession& s) {
  const ops::SnapshotImage& img = s.image();
  if (g.json) {
    nlohmann::json files = nlohmann::json::array(), mounts = nlohmann::json::array();
    for (const ops::ImageFile& f : img.files()) {
      files.push_back({{"name", f.name}, {"offset", f.offset}, {"size", f.size}, {"fs", f.fs}});
    }
    for (const ops::FilesystemMount& m : s.mounts()) {
      mounts.push_back({{"dir", m.dir}, {"fs", m.fs}, {"loop", m.loop},
                        {"error", m.status.ok() ? "" : m.status.message()}});
    }
    std::cout << nlohmann::json{{"snapshot", img.snapshot().id}, {"dir", dir},
                                {"partition_table", SchemeName(img.table().scheme)},
                                {"partition_table_error", img.table_error() ? img.table_error()->message() : ""},
                                {"files", files}, {"filesystems", mounts}, {"pid", ::getpid()}}
                     .dump()
              << std::endl;
    return;
  }
  if (img.table_error() && !g.quiet) {
    std::fprintf(stderr, "sparetime: warning: partition table unreadable (%s); only disk.img is shown\n",
                 img.table_error()->message().c_str());
  }
  for (const ops::FilesystemMount& m : s.mounts()) {
    if (!m.status.ok() && !g.quiet) {
      std::fprintf(stderr, "sparetime: warning: %s\n", m.status.message().c_str());
    }
  }
  if (g.quiet) return;
  std::printf("mounted snapshot %s at %s:\n", img.snapshot().id.c_str(), dir.c_str());
  for (const ops::ImageFile& f : img.files()) {
    std::printf("  %s/%s  %s%s%s\n", dir.c_str(), f.name.c_str(), HumanBytes(f.size).c_str(),
                f.fs.empty() ? "" : ", ", f.fs.c_str());
  }
  for (const ops::FilesystemMount& m : s.mounts()) {
    if (m.status.ok()) std::printf("  %s/  %s, read only (%s)\n", m.dir.c_str(), m.fs.c_str(), m.loop.c_str());
  }
  std::printf("run `sparetime umount %s` or press Ctrl-C to unmount\n", dir.c_str());
  std::fflush(stdout);
}

}  // namespace

int RunMount(const GlobalOptions& g, const MountCommandOptions& o) {
  bool filesystems = o.filesystems.value_or(::isatty(STDOUT_FILENO) == 1);
  MountSession session;
  int rc = kExitOk;
  if (!session.Open(g, o.snapshot, o.device, o.dir, filesystems, o.cache_mib, o.hold_seconds, &rc)) {
    return rc;
  }
  PrintMounted(g, o.dir, session);
  while (!(g.interrupted && g.interrupted->load()) && session.serving()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  session.Close();
  if (!g.quiet && !g.json) std::printf("unmounted %s\n", o.dir.c_str());
  return kExitOk;
}

int RunUmount(const GlobalOptions& g, const std::string& dir) {
  Result<ops::UnmountReport> r = ops::Unmount(dir, std::chrono::seconds(30));
  if (!r.ok()) return Fail(r.status(), Stage::kWork);
  if (g.json) {
    std::cout << nlohmann::json{{"dir", dir}, {"pid", r->pid}, {"stale", r->stale},
                                {"unmounted", r->unmounted}}
                     .dump()
              << "\n";
  } else if (!g.quiet) {
    if (r->stale) {
      std::printf("cleaned stale mount %s (process %d was gone)\n", dir.c_str(), r->pid);
    } else {
      std::printf("unmounted %s (process %d stopped)\n", dir.c_str(), r->pid);
    }
  }
  return kExitOk;
}

int RunRestoreFile(const GlobalOptions& g, const RestoreFileOptions& o) {
  char tmpl[] = "/tmp/sparetime-restore.XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return Fail(ErrnoStatus("create a mount point in /tmp", errno), Stage::kWork);
  const std::string dir = tmpl;
  int rc = kExitOk;
  {
    MountSession session;
    if (!session.Open(g, o.snapshot, o.device, dir, /*filesystems=*/true, 256, 120, &rc)) {
      ::rmdir(dir.c_str());
      return rc;
    }
    // PATH: "partN/..." or "disk/..." names the filesystem; "/..." (or any
    // other path) means the only one mounted.
    std::vector<std::string> names;
    for (const ops::FilesystemMount& m : session.mounts()) {
      if (m.status.ok()) names.push_back(m.dir.substr(dir.size() + 1));
    }
    std::string rel = o.path;
    while (!rel.empty() && rel.front() == '/') rel.erase(0, 1);
    std::string source;
    for (const std::string& n : names) {
      if (rel == n || rel.rfind(n + "/", 0) == 0) source = dir + "/" + rel;
    }
    if (source.empty() && names.size() == 1) source = dir + "/" + names[0] + "/" + rel;
    Status st;
    if (source.empty()) {
      std::string list;
      for (const std::string& n : names) list += (list.empty() ? "" : ", ") + n + "/";
      st = names.empty() ? NotFound("snapshot " + session.image().snapshot().id +
                                    " has no filesystem sparetime can mount (ext4, xfs); use "
                                    "`sparetime mount` and read its image files")
                         : InvalidArgument("the snapshot has several filesystems (" + list +
                                           "): start --file with one of them, e.g. " + names[0] +
                                           "/" + rel);
    }
    Result<ops::CopyReport> copied = st.ok() ? ops::CopyOut(source, o.dest) : Result<ops::CopyReport>(st);
    if (!copied.ok() && copied.status().code() == ErrorCode::kNotFound && st.ok()) {
      copied = NotFound(o.path + " is not in snapshot " + session.image().snapshot().id +
                        " (looked in " + source.substr(dir.size() + 1) +
                        "); list it with `sparetime mount`");
    }
    session.Close();
    ::rmdir(dir.c_str());
    if (!copied.ok()) return Fail(copied.status(), Stage::kWork);
    if (g.json) {
      std::cout << nlohmann::json{{"snapshot", session.image().snapshot().id}, {"path", o.path},
                                  {"to", o.dest}, {"files", copied->files}, {"dirs", copied->dirs},
                                  {"symlinks", copied->symlinks}, {"hardlinks", copied->hardlinks},
                                  {"bytes", copied->bytes}}
                       .dump()
                << "\n";
    } else if (!g.quiet) {
      std::printf("restored %s from snapshot %s to %s: %llu files, %llu directories, %s\n",
                  o.path.c_str(), session.image().snapshot().id.c_str(), o.dest.c_str(),
                  static_cast<unsigned long long>(copied->files),
                  static_cast<unsigned long long>(copied->dirs), HumanBytes(copied->bytes).c_str());
    }
  }
  return kExitOk;
}

}  // namespace sparetime::cli
