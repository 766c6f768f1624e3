// ImageFs over libfuse3's high-level API (see image_fs.h). The tree is
// immutable after Start, so the callbacks read it without a lock; the
// kernel may cache pages and attributes for as long as it likes
// (kernel_cache, long timeouts): a snapshot never changes.
#define FUSE_USE_VERSION 312
#include "sparetime/fusefs/image_fs.h"

#include <fcntl.h>
#include <fuse.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

namespace sparetime::fusefs {

struct ImageFs::State {
  Tree tree;
  std::string dir;
  unsigned threads = 8;
  struct fuse* fuse = nullptr;
  std::thread loop;
  std::atomic<bool> serving{false};
  std::atomic<uint64_t> read_errors{0};
  bool stopped = false;
};

namespace {

using State = ImageFs::State;

State* Current() { return static_cast<State*>(fuse_get_context()->private_data); }

// The index of the file `path` ("/name") names, or -1.
int FindFile(const State& s, const char* path) {
  if (path[0] != '/') return -1;
  for (size_t i = 0; i < s.tree.files.size(); ++i) {
    if (s.tree.files[i].name == path + 1) return static_cast<int>(i);
  }
  return -1;
}

bool IsDir(const State& s, const char* path) {
  if (std::strcmp(path, "/") == 0) return true;
  for (const std::string& d : s.tree.dirs) {
    if (d == path + 1) return true;
  }
  return false;
}

void FillTimes(struct stat* st, int64_t t) {
  st->st_atim.tv_sec = st->st_mtim.tv_sec = st->st_ctim.tv_sec = static_cast<time_t>(t);
}

void* Init(struct fuse_conn_info* conn, struct fuse_config* cfg) {
  cfg->kernel_cache = 1;
  cfg->entry_timeout = cfg->attr_timeout = cfg->negative_timeout = 3600;
  conn->max_readahead = 4u << 20;  // the kernel clamps it to what it allows
  return Current();
}

int GetAttr(const char* path, struct stat* st, struct fuse_file_info*) {
  const State& s = *Current();
  std::memset(st, 0, sizeof *st);
  FillTimes(st, s.tree.mtime);
  if (IsDir(s, path)) {
    st->st_mode = S_IFDIR | 0500;
    st->st_nlink = std::strcmp(path, "/") == 0 ? 2 + s.tree.dirs.size() : 2;
    return 0;
  }
  int i = FindFile(s, path);
  if (i < 0) return -ENOENT;
  st->st_mode = S_IFREG | 0400;
  st->st_nlink = 1;
  st->st_size = static_cast<off_t>(s.tree.files[i].size);
  st->st_blksize = 1 << 20;
  st->st_blocks = static_cast<blkcnt_t>((s.tree.files[i].size + 511) / 512);
  return 0;
}

int ReadDir(const char* path, void* buf, fuse_fill_dir_t filler, off_t, struct fuse_file_info*,
            enum fuse_readdir_flags) {
  const State& s = *Current();
  if (!IsDir(s, path)) return -ENOTDIR;
  filler(buf, ".", nullptr, 0, static_cast<fuse_fill_dir_flags>(0));
  filler(buf, "..", nullptr, 0, static_cast<fuse_fill_dir_flags>(0));
  if (std::strcmp(path, "/") != 0) return 0;
  for (const File& f : s.tree.files) {
    filler(buf, f.name.c_str(), nullptr, 0, static_cast<fuse_fill_dir_flags>(0));
  }
  for (const std::string& d : s.tree.dirs) {
    filler(buf, d.c_str(), nullptr, 0, static_cast<fuse_fill_dir_flags>(0));
  }
  return 0;
}

int Open(const char* path, struct fuse_file_info* fi) {
  const State& s = *Current();
  int i = FindFile(s, path);
  if (i < 0) return IsDir(s, path) ? -EISDIR : -ENOENT;
  if ((fi->flags & O_ACCMODE) != O_RDONLY) return -EROFS;
  fi->fh = static_cast<uint64_t>(i);
  fi->keep_cache = 1;
  return 0;
}

int Read(const char*, char* buf, size_t size, off_t offset, struct fuse_file_info* fi) {
  State& s = *Current();
  const File& f = s.tree.files[fi->fh];
  Result<size_t> n = f.read(static_cast<uint64_t>(offset),
                            std::span<std::byte>(reinterpret_cast<std::byte*>(buf), size));
  if (!n.ok()) {
    s.read_errors.fetch_add(1);
    return -EIO;
  }
  return static_cast<int>(*n);
}

const struct fuse_operations kOps = [] {
  struct fuse_operations ops {};
  ops.init = Init;
  ops.getattr = GetAttr;
  ops.readdir = ReadDir;
  ops.open = Open;
  ops.read = Read;
  return ops;
}();

}  // namespace

Status CheckFuseAvailable(const std::string& device) {
  struct stat st {};
  if (::stat(device.c_str(), &st) != 0 || !S_ISCHR(st.st_mode)) {
    return Unavailable("FUSE is unavailable: " + device +
                       " is missing or not a character device; load the kernel module "
                       "(modprobe fuse) and install the fuse3 package (libfuse3-3, "
                       "fusermount3); in a container, pass /dev/fuse in");
  }
  return Status::Ok();
}

ImageFs::ImageFs(std::unique_ptr<State> state) : state_(std::move(state)) {}

ImageFs::~ImageFs() { Stop(); }

Result<std::unique_ptr<ImageFs>> ImageFs::Start(const std::string& dir, Tree tree,
                                                unsigned threads) {
  ST_RETURN_IF_ERROR(CheckFuseAvailable());
  auto state = std::make_unique<State>();
  state->tree = std::move(tree);
  state->dir = dir;
  state->threads = threads ? threads : 1;
  const std::string options =
      "fsname=sparetime:" + std::to_string(::getpid()) + ",subtype=sparetime,ro";
  const char* argv[] = {"sparetime", "-o", options.c_str(), nullptr};
  struct fuse_args args = FUSE_ARGS_INIT(3, const_cast<char**>(argv));
  state->fuse = fuse_new(&args, &kOps, sizeof kOps, state.get());
  fuse_opt_free_args(&args);
  if (state->fuse == nullptr) return Internal("libfuse refused the options " + options);
  if (fuse_mount(state->fuse, dir.c_str()) != 0) {
    fuse_destroy(state->fuse);
    return Unavailable("could not mount a FUSE filesystem at " + dir +
                       " (libfuse printed why above); check /dev/fuse and that you are root");
  }
  State* s = state.get();
  s->serving = true;
  s->loop = std::thread([s] {
    struct fuse_loop_config* cfg = fuse_loop_cfg_create();
    fuse_loop_cfg_set_max_threads(cfg, s->threads);
    fuse_loop_cfg_set_idle_threads(cfg, s->threads);
    fuse_loop_mt(s->fuse, cfg);
    fuse_loop_cfg_destroy(cfg);
    s->serving = false;
  });
  return std::unique_ptr<ImageFs>(new ImageFs(std::move(state)));
}

void ImageFs::Stop() {
  State& s = *state_;
  if (s.stopped) return;
  s.stopped = true;
  fuse_exit(s.fuse);
  fuse_unmount(s.fuse);  // the kernel ends the session: the loop's reads return
  if (s.loop.joinable()) s.loop.join();
  fuse_destroy(s.fuse);
}

bool ImageFs::serving() const { return state_->serving.load(); }

uint64_t ImageFs::read_errors() const { return state_->read_errors.load(); }

}  // namespace sparetime::fusefs
