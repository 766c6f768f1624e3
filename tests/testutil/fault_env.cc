// FaultEnv: fault injection and power-loss simulation (see fault_env.h).
#include "testutil/fault_env.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

namespace sparetime::testing {

namespace {

std::string Norm(const std::string& path) {
  std::string p = std::filesystem::absolute(path).lexically_normal().string();
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

std::string FdPath(int fd) {
  std::error_code ec;
  std::string p =
      std::filesystem::read_symlink("/proc/self/fd/" + std::to_string(fd), ec).string();
  if (ec || p.ends_with(" (deleted)")) return "";
  return p;
}

std::optional<std::string> ReadWhole(const std::string& path) {
  Result<std::string> r = ReadFileToString(path);
  if (!r.ok()) return std::nullopt;
  return std::move(*r);
}

void WriteWhole(const std::string& path, const std::string& content) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  WriteFullAt(fd, AsBytes(content), 0).IgnoreError();
  ::close(fd);
}

Status PowerOff(const std::string& what) {
  return IoError(what + ": Input/output error (simulated power cut)");
}

}  // namespace

FaultEnv::~FaultEnv() = default;

void FaultEnv::SetFault(FaultRule rule) {
  MutexLock l(mu_);
  rule_ = std::move(rule);
  rule_matches_ = 0;
}

void FaultEnv::ClearFault() {
  MutexLock l(mu_);
  rule_.reset();
}

uint64_t FaultEnv::faults_injected() {
  MutexLock l(mu_);
  return faults_;
}

uint64_t FaultEnv::Count(uint32_t mask) {
  MutexLock l(mu_);
  uint64_t n = 0;
  for (const auto& [op, c] : counts_)
    if (op & mask) n += c;
  return n;
}

void FaultEnv::CrashAtSync(uint64_t k) {
  MutexLock l(mu_);
  crash_at_ = k;
  syncs_since_arm_ = 0;
}

bool FaultEnv::power_off() {
  MutexLock l(mu_);
  return power_off_;
}

Status FaultEnv::Check(FaultOp op, const std::string& path) {
  ++counts_[op];
  static const bool trace = std::getenv("SPARETIME_FAULT_TRACE") != nullptr;
  if (trace) std::fprintf(stderr, "faultenv: op %u %s%s\n", op, path.c_str(),
                          power_off_ ? " (power off)" : "");
  if (op & kOpAnySync) {
    if (crash_at_ && syncs_since_arm_++ == *crash_at_) {
      power_off_ = true;
      crash_at_.reset();
    }
  }
  if (power_off_) return PowerOff(path);
  if (rule_ && (rule_->ops & op) &&
      (rule_->path_contains.empty() || path.find(rule_->path_contains) != std::string::npos)) {
    const uint64_t i = rule_matches_++;
    if (i == rule_->nth || (rule_->sticky && i > rule_->nth)) {
      ++faults_;
      static const bool trace = std::getenv("SPARETIME_FAULT_TRACE") != nullptr;
      if (trace) std::fprintf(stderr, "faultenv: ^ injected errno %d\n", rule_->error);
      return ErrnoStatus(path + " (injected fault)", rule_->error);
    }
  }
  return Status::Ok();
}

Result<FaultEnv::FileState*> FaultEnv::StateOf(int fd) {
  struct stat sb;
  if (::fstat(fd, &sb) != 0) return ErrnoStatus("fstat", errno);
  FileState& fs = files_[{sb.st_dev, sb.st_ino}];
  if (fs.path.empty()) fs.path = FdPath(fd);
  return &fs;
}

void FaultEnv::Dirty(FileState& fs, int fd) {
  if (fs.dirty) return;
  struct stat sb;
  fs.durable_size = ::fstat(fd, &sb) == 0 ? static_cast<uint64_t>(sb.st_size) : 0;
  fs.dirty = true;
  fs.undo.clear();
}

Status FaultEnv::Preimage(FileState& fs, int fd, uint64_t offset, uint64_t len) {
  Dirty(fs, fd);
  struct stat sb;
  if (::fstat(fd, &sb) != 0) return ErrnoStatus("fstat", errno);
  const uint64_t end =
      std::min({offset + len, fs.durable_size, static_cast<uint64_t>(sb.st_size)});
  if (offset >= end) return Status::Ok();
  // The fd may be write-only: read through a fresh descriptor.
  Result<Fd> rd = OpenFile("/proc/self/fd/" + std::to_string(fd), O_RDONLY);
  if (!rd.ok()) return rd.status();
  std::string old(end - offset, '\0');
  ST_ASSIGN_OR_RETURN(size_t n, ReadFullAt(rd->get(),
                                           {reinterpret_cast<std::byte*>(old.data()), old.size()},
                                           offset));
  old.resize(n);
  fs.undo.emplace_back(offset, std::move(old));
  return Status::Ok();
}

std::optional<std::string> FaultEnv::DurableContent(const std::string& path) {
  std::optional<std::string> content = ReadWhole(path);
  if (!content) return std::nullopt;
  struct stat sb;
  if (::stat(path.c_str(), &sb) != 0) return content;
  auto it = files_.find({sb.st_dev, sb.st_ino});
  if (it == files_.end() || !it->second.dirty) return content;
  const FileState& fs = it->second;
  content->resize(fs.durable_size, '\0');
  for (auto u = fs.undo.rbegin(); u != fs.undo.rend(); ++u)
    content->replace(u->first, u->second.size(), u->second);
  return content;
}

void FaultEnv::Forget(const std::string& path) {
  struct stat sb;
  if (::stat(path.c_str(), &sb) == 0) files_.erase({sb.st_dev, sb.st_ino});
}

// --- Env ------------------------------------------------------------------------

Result<Fd> FaultEnv::Open(const std::string& raw_path, int flags, mode_t mode) {
  const std::string path = Norm(raw_path);
  MutexLock l(mu_);
  struct stat sb;
  const bool existed = ::stat(path.c_str(), &sb) == 0;
  const bool creates = (flags & O_CREAT) && !existed;
  const bool truncates = (flags & O_TRUNC) && existed && sb.st_size > 0 && (flags & O_ACCMODE);
  if (creates) ST_RETURN_IF_ERROR(Check(kOpCreate, path));
  if (truncates) ST_RETURN_IF_ERROR(Check(kOpTruncate, path));
  std::optional<std::string> old;
  if (truncates) old = DurableContent(path);
  std::optional<FileState> prior;
  if (truncates) {
    auto it = files_.find({sb.st_dev, sb.st_ino});
    if (it != files_.end()) prior = it->second;
  }
  ST_ASSIGN_OR_RETURN(Fd fd, base_->Open(path, flags, mode));
  ST_ASSIGN_OR_RETURN(FileState * fs, StateOf(fd.get()));
  fs->path = path;
  if (creates) {
    *fs = FileState{path, /*dirty=*/true, /*durable_size=*/0, {}};
    pending_.push_back({NameOp::kCreateFile, path, "", std::nullopt, {DirName(path)}});
  } else if (truncates && old) {
    if (prior && prior->dirty) {
      *fs = *prior;  // still dirty since its last sync; add the truncated bytes
      fs->path = path;
    } else {
      *fs = FileState{path, true, static_cast<uint64_t>(sb.st_size), {}};
    }
    // The whole durable content is the pre-image of the truncation.
    fs->undo.emplace_back(0, old->substr(0, std::min<size_t>(old->size(), fs->durable_size)));
  }
  return fd;
}

Result<size_t> FaultEnv::ReadAt(int fd, std::span<std::byte> buf, uint64_t offset) {
  return base_->ReadAt(fd, buf, offset);
}

Status FaultEnv::WriteAt(int fd, std::span<const std::byte> data, uint64_t offset) {
  MutexLock l(mu_);
  ST_ASSIGN_OR_RETURN(FileState * fs, StateOf(fd));
  ST_RETURN_IF_ERROR(Check(kOpWrite, fs->path));
  ST_RETURN_IF_ERROR(Preimage(*fs, fd, offset, data.size()));
  return base_->WriteAt(fd, data, offset);
}

Status FaultEnv::Truncate(int fd, uint64_t size) {
  MutexLock l(mu_);
  ST_ASSIGN_OR_RETURN(FileState * fs, StateOf(fd));
  ST_RETURN_IF_ERROR(Check(kOpTruncate, fs->path));
  ST_RETURN_IF_ERROR(Preimage(*fs, fd, size, UINT64_MAX - size));
  return base_->Truncate(fd, size);
}

Status FaultEnv::Sync(int fd, SyncMode mode, const std::string& what) {
  MutexLock l(mu_);
  ST_ASSIGN_OR_RETURN(FileState * fs, StateOf(fd));
  ST_RETURN_IF_ERROR(Check(kOpSync, fs->path.empty() ? what : fs->path));
  if (real_syncs_) ST_RETURN_IF_ERROR(base_->Sync(fd, mode, what));
  fs->dirty = false;
  fs->undo.clear();
  return Status::Ok();
}

Result<uint64_t> FaultEnv::FileSize(int fd) { return base_->FileSize(fd); }

Status FaultEnv::Lock(int fd, int operation, const std::string& what) {
  return base_->Lock(fd, operation, what);
}

Status FaultEnv::SyncDir(const std::string& raw_dir) {
  const std::string dir = Norm(raw_dir);
  MutexLock l(mu_);
  ST_RETURN_IF_ERROR(Check(kOpSyncDir, dir));
  if (real_syncs_) {
    ST_RETURN_IF_ERROR(base_->SyncDir(dir));
  } else {
    ST_ASSIGN_OR_RETURN(bool exists, base_->Exists(dir));  // what fsync(dir) would say
    if (!exists) return ErrnoStatus("open " + dir, ENOENT);
  }
  for (NameOp& op : pending_) op.dirs.erase(dir);
  std::erase_if(pending_, [](const NameOp& op) { return op.dirs.empty(); });
  return Status::Ok();
}

Status FaultEnv::Rename(const std::string& raw_from, const std::string& raw_to) {
  const std::string from = Norm(raw_from), to = Norm(raw_to);
  MutexLock l(mu_);
  ST_RETURN_IF_ERROR(Check(kOpRename, to));
  std::optional<std::string> replaced = DurableContent(to);
  struct stat before;
  const bool had_to = ::stat(to.c_str(), &before) == 0;
  ST_RETURN_IF_ERROR(base_->Rename(from, to));
  if (had_to) files_.erase({before.st_dev, before.st_ino});
  struct stat sb;
  if (::stat(to.c_str(), &sb) == 0) {
    auto it = files_.find({sb.st_dev, sb.st_ino});
    if (it != files_.end()) it->second.path = to;
  }
  pending_.push_back({NameOp::kRename, to, from, replaced, {DirName(from), DirName(to)}});
  return Status::Ok();
}

Status FaultEnv::Unlink(const std::string& raw_path) {
  const std::string path = Norm(raw_path);
  MutexLock l(mu_);
  ST_RETURN_IF_ERROR(Check(kOpUnlink, path));
  std::optional<std::string> content = DurableContent(path);
  struct stat sb;
  const bool had = ::stat(path.c_str(), &sb) == 0;
  ST_RETURN_IF_ERROR(base_->Unlink(path));
  if (had) files_.erase({sb.st_dev, sb.st_ino});
  pending_.push_back({NameOp::kUnlink, path, "", content, {DirName(path)}});
  return Status::Ok();
}

Status FaultEnv::CreateDir(const std::string& raw_path, mode_t mode) {
  const std::string path = Norm(raw_path);
  MutexLock l(mu_);
  ST_RETURN_IF_ERROR(Check(kOpCreate, path));
  ST_RETURN_IF_ERROR(base_->CreateDir(path, mode));
  pending_.push_back({NameOp::kCreateDir, path, "", std::nullopt, {DirName(path)}});
  return Status::Ok();
}

Result<bool> FaultEnv::Exists(const std::string& path) { return base_->Exists(path); }

// --- Power cut -------------------------------------------------------------------

std::string FaultEnv::PowerCut() {
  MutexLock l(mu_);
  std::string log;
  // 1. File contents back to their last sync, at their current names.
  for (auto& [inode, fs] : files_) {
    if (!fs.dirty || fs.path.empty()) continue;
    struct stat sb;
    if (::stat(fs.path.c_str(), &sb) != 0 || Inode{sb.st_dev, sb.st_ino} != inode) continue;
    int fd = ::open(fs.path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) continue;
    if (static_cast<uint64_t>(sb.st_size) != fs.durable_size || !fs.undo.empty())
      log += "restored " + fs.path + " to " + std::to_string(fs.durable_size) + " bytes; ";
    [[maybe_unused]] int rc = ::ftruncate(fd, static_cast<off_t>(fs.durable_size));
    for (auto u = fs.undo.rbegin(); u != fs.undo.rend(); ++u)
      WriteFullAt(fd, AsBytes(u->second), u->first).IgnoreError();
    ::close(fd);
  }
  // 2. Names not made durable, newest first.
  for (auto op = pending_.rbegin(); op != pending_.rend(); ++op) {
    std::error_code ec;
    switch (op->kind) {
      case NameOp::kCreateFile:
        ::unlink(op->path.c_str());
        log += "dropped created " + op->path + "; ";
        break;
      case NameOp::kCreateDir:
        std::filesystem::remove_all(op->path, ec);
        log += "dropped mkdir " + op->path + "; ";
        break;
      case NameOp::kUnlink:
        if (op->stash) WriteWhole(op->path, *op->stash);
        log += "undid unlink " + op->path + "; ";
        break;
      case NameOp::kRename:
        ::rename(op->path.c_str(), op->from.c_str());
        if (op->stash) WriteWhole(op->path, *op->stash);
        log += "undid rename " + op->from + " -> " + op->path + "; ";
        break;
    }
  }
  files_.clear();
  pending_.clear();
  crash_at_.reset();
  power_off_ = false;
  rule_.reset();
  return log;
}

}  // namespace sparetime::testing
