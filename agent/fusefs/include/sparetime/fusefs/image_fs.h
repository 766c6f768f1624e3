// ImageFs: a read-only FUSE filesystem (libfuse3) of a few image files and
// empty directories at the top level — what `sparetime mount` shows:
// DIR/disk.img, DIR/partN.img and the DIR/partN/ mount points.
//
// Invariants:
//   - Read only: files are 0400, directories 0500, owned by root; every
//     write-side operation is refused by FUSE's default (ENOSYS/EROFS).
//   - A read that the file's read function fails answers EIO for that
//     request only; the filesystem keeps serving.
//   - Start returns only once the kernel mount is in place (a stat of the
//     directory sees it); Stop unmounts and joins the serving threads, and
//     is what the destructor does.
//   - The fsname is "sparetime:<pid>" (type fuse.sparetime), so
//     /proc/self/mountinfo tells which process serves a mount — how a stale
//     mount (its process gone) is recognised (ops/mount.h).
//   - No /dev/fuse (module not loaded, container without it): kUnavailable
//     saying so, before anything is mounted.
//
// Thread safety: read functions are called from several FUSE threads at
// once. Start/Stop from one thread.
#ifndef SPARETIME_FUSEFS_IMAGE_FS_H_
#define SPARETIME_FUSEFS_IMAGE_FS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "sparetime/base/status.h"

namespace sparetime::fusefs {

struct File {
  std::string name;  // no '/'
  uint64_t size = 0;
  std::function<Result<size_t>(uint64_t offset, std::span<std::byte> out)> read;
};

struct Tree {
  std::vector<File> files;
  std::vector<std::string> dirs;  // empty directories (mount points)
  int64_t mtime = 0;              // every entry's times (the snapshot's time)
};

// "sparetime"; the mount type is "fuse." + this.
inline constexpr const char* kFsType = "fuse.sparetime";

// OK when /dev/fuse is a character device; else kUnavailable naming the
// module and the package.
Status CheckFuseAvailable(const std::string& device = "/dev/fuse");

class ImageFs {
 public:
  // Mounts `tree` at `dir` and serves it on `threads` threads.
  static Result<std::unique_ptr<ImageFs>> Start(const std::string& dir, Tree tree,
                                                unsigned threads = 8);
  ~ImageFs();
  ImageFs(const ImageFs&) = delete;
  ImageFs& operator=(const ImageFs&) = delete;

  // Unmounts (the kernel ends the session) and waits for the serving threads.
  void Stop();
  // False once the session ended (unmounted from outside, or Stop).
  bool serving() const;
  // Reads answered with EIO so far.
  uint64_t read_errors() const;

  struct State;

 private:
  explicit ImageFs(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace sparetime::fusefs

#endif  // SPARETIME_FUSEFS_IMAGE_FS_H_
