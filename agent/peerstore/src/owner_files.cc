// owner_files.h: history entries, the departed mark, byte counts, removal.
#include "owner_files.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <charconv>
#include <filesystem>
#include <system_error>

#include "sparetime/base/bytes.h"

namespace sparetime::peerstore::owner_files {
namespace fs = std::filesystem;

namespace {

std::string HistoryDir(const std::string& dir) { return dir + "/history"; }

std::optional<uint64_t> ParseNumber(std::string_view s) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

}  // namespace

Status KeepGeneration(Env& env, const std::string& dir, std::span<const std::byte> old_roots_file,
                      int64_t now) {
  if (old_roots_file.size() < 8) return Status::Ok();  // nothing worth keeping
  const uint64_t generation = GetLe64(old_roots_file.data());
  ST_RETURN_IF_ERROR(MakeDirs(env, HistoryDir(dir), 0700));
  std::string file(8 + old_roots_file.size(), '\0');
  PutLe64(reinterpret_cast<std::byte*>(file.data()), static_cast<uint64_t>(now));
  std::copy(old_roots_file.begin(), old_roots_file.end(),
            reinterpret_cast<std::byte*>(file.data()) + 8);
  return WriteFileAtomic(env, HistoryDir(dir) + "/" + std::to_string(generation), file, 0600);
}

Result<std::vector<HistoryEntry>> ListHistory(const std::string& dir) {
  std::vector<HistoryEntry> out;
  std::error_code ec;
  fs::directory_iterator it(HistoryDir(dir), ec);
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory) return out;
    return ErrnoStatus("cannot list " + HistoryDir(dir), ec.value());
  }
  for (const fs::directory_entry& e : it) {
    std::optional<uint64_t> g = ParseNumber(e.path().filename().string());
    if (!g) continue;  // a temp file of an interrupted write
    HistoryEntry h;
    h.generation = *g;
    h.file_bytes = e.file_size(ec);
    if (ec || h.file_bytes < 16) continue;
    std::string head(8, '\0');
    FILE* f = std::fopen(e.path().c_str(), "rb");
    if (f == nullptr) continue;
    const size_t n = std::fread(head.data(), 1, 8, f);
    std::fclose(f);
    if (n != 8) continue;
    h.replaced_at = static_cast<int64_t>(GetLe64(reinterpret_cast<const std::byte*>(head.data())));
    out.push_back(h);
  }
  std::sort(out.begin(), out.end(),
            [](const HistoryEntry& a, const HistoryEntry& b) { return a.generation < b.generation; });
  return out;
}

Result<std::string> ReadGeneration(Env& env, const std::string& dir, uint64_t generation) {
  Result<std::string> text =
      ReadFileToString(env, HistoryDir(dir) + "/" + std::to_string(generation));
  if (!text.ok()) return text.status();
  if (text->size() < 16) {
    return Status(ErrorCode::kCorruption,
                  HistoryDir(dir) + "/" + std::to_string(generation) + " is truncated");
  }
  return text->substr(8);
}

Result<std::pair<uint64_t, uint64_t>> ExpireHistory(Env& env, const std::string& dir,
                                                    uint64_t current, int64_t now,
                                                    int64_t grace_seconds) {
  ST_ASSIGN_OR_RETURN(std::vector<HistoryEntry> entries, ListHistory(dir));
  uint64_t count = 0, bytes = 0;
  for (const HistoryEntry& h : entries) {
    if (h.generation < current && now - h.replaced_at < grace_seconds) continue;
    ST_RETURN_IF_ERROR(env.Unlink(HistoryDir(dir) + "/" + std::to_string(h.generation)));
    ++count;
    bytes += h.file_bytes;
  }
  if (count > 0) ST_RETURN_IF_ERROR(env.SyncDir(HistoryDir(dir)));
  return std::make_pair(count, bytes);
}

uint64_t HistoryBytes(const std::string& dir) {
  Result<std::vector<HistoryEntry>> entries = ListHistory(dir);
  uint64_t bytes = 0;
  if (entries.ok()) {
    for (const HistoryEntry& h : *entries) bytes += h.file_bytes;
  }
  return bytes;
}

std::optional<int64_t> DepartedSince(Env& env, const std::string& dir) {
  Result<std::string> text = ReadFileToString(env, dir + "/departed");
  if (!text.ok()) return std::nullopt;
  std::string_view s = *text;
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.remove_suffix(1);
  std::optional<uint64_t> v = ParseNumber(s);
  if (!v) return std::nullopt;  // a damaged mark: NoteDirectory marks it again from now
  return static_cast<int64_t>(*v);
}

Status MarkDeparted(Env& env, const std::string& dir, int64_t now) {
  return WriteFileAtomic(env, dir + "/departed", std::to_string(now) + "\n", 0600);
}

Status ClearDeparted(Env& env, const std::string& dir) {
  ST_ASSIGN_OR_RETURN(bool exists, env.Exists(dir + "/departed"));
  if (!exists) return Status::Ok();
  ST_RETURN_IF_ERROR(env.Unlink(dir + "/departed"));
  return env.SyncDir(dir);
}

uint64_t TreeBytes(const std::string& dir) {
  uint64_t bytes = 0;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code ec2;
    if (it->is_regular_file(ec2)) bytes += it->file_size(ec2);
  }
  return bytes;
}

// Directories are removed with rmdir(2) directly: Env has no call for it,
// and an emptied directory left behind by a crash is harmless (Scan skips
// an owner directory without a store).
Status RemoveTree(Env& env, const std::string& dir) {
  std::vector<fs::path> files, dirs;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code ec2;
    (it->is_directory(ec2) ? dirs : files).push_back(it->path());
  }
  if (ec && ec != std::errc::no_such_file_or_directory) {
    return ErrnoStatus("cannot list " + dir, ec.value());
  }
  for (const fs::path& f : files) ST_RETURN_IF_ERROR(env.Unlink(f.string()));
  // Deepest first: a longer path is never a parent of a shorter one.
  std::sort(dirs.begin(), dirs.end(), [](const fs::path& a, const fs::path& b) {
    return a.string().size() > b.string().size();
  });
  for (const fs::path& d : dirs) {
    if (::rmdir(d.c_str()) != 0) return ErrnoStatus("cannot remove " + d.string(), errno);
  }
  if (::rmdir(dir.c_str()) != 0 && errno != ENOENT) {
    return ErrnoStatus("cannot remove " + dir, errno);
  }
  return env.SyncDir(DirName(dir));
}

}  // namespace sparetime::peerstore::owner_files
