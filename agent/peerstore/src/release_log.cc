// ReleaseLog (release_log.h): append-only records, replayed at Load.
#include "release_log.h"

#include <fcntl.h>

#include "sparetime/base/bytes.h"

namespace sparetime::peerstore {
namespace {

void Encode(const ReleaseLog::Record& r, std::byte* out) {
  out[0] = static_cast<std::byte>(r.kind);
  PutLe64(out + 1, static_cast<uint64_t>(r.when));
  std::memcpy(out + 9, r.id.bytes.data(), ChunkId::kSize);
}

}  // namespace

Result<PendingReleases> ReleaseLog::Load(Env& env, const std::string& path) {
  PendingReleases pending;
  ST_ASSIGN_OR_RETURN(bool exists, env.Exists(path));
  if (!exists) return pending;
  ST_ASSIGN_OR_RETURN(std::string text, ReadFileToString(env, path));
  auto bytes = AsBytes(text);
  size_t good = 0;
  for (size_t at = 0; at + kRecordBytes <= bytes.size(); at += kRecordBytes) {
    const char kind = static_cast<char>(bytes[at]);
    if (kind != kReleased && kind != kKept) break;
    const int64_t when = static_cast<int64_t>(GetLe64(bytes.data() + at + 1));
    const ChunkId id = ChunkId::FromBytes(
        std::span<const std::byte, ChunkId::kSize>(bytes.data() + at + 9, ChunkId::kSize));
    if (kind == kKept) {
      pending.erase(id);
    } else {
      pending.emplace(id, when);  // the earliest release counts
    }
    good = at + kRecordBytes;
  }
  if (good != bytes.size()) {  // a torn append: cut it so the next one lines up
    ST_ASSIGN_OR_RETURN(Fd fd, env.Open(path, O_RDWR, 0600));
    ST_RETURN_IF_ERROR(env.Truncate(fd.get(), good));
    ST_RETURN_IF_ERROR(env.Sync(fd.get(), SyncMode::kData, path));
  }
  return pending;
}

Status ReleaseLog::Append(Env& env, const std::string& path, const std::vector<Record>& records) {
  if (records.empty()) return Status::Ok();
  ST_ASSIGN_OR_RETURN(bool existed, env.Exists(path));
  ST_ASSIGN_OR_RETURN(Fd fd, env.Open(path, O_RDWR | O_CREAT, 0600));
  ST_ASSIGN_OR_RETURN(uint64_t size, env.FileSize(fd.get()));
  size -= size % kRecordBytes;  // over a torn tail Load has not cut yet
  std::vector<std::byte> buf(records.size() * kRecordBytes);
  for (size_t i = 0; i < records.size(); ++i) Encode(records[i], buf.data() + i * kRecordBytes);
  ST_RETURN_IF_ERROR(env.WriteAt(fd.get(), buf, size));
  ST_RETURN_IF_ERROR(env.Sync(fd.get(), SyncMode::kData, path));
  if (!existed) ST_RETURN_IF_ERROR(env.SyncDir(DirName(path)));
  return Status::Ok();
}

Status ReleaseLog::Rewrite(Env& env, const std::string& path, const PendingReleases& pending) {
  if (pending.empty()) {
    ST_ASSIGN_OR_RETURN(bool exists, env.Exists(path));
    if (!exists) return Status::Ok();
    ST_RETURN_IF_ERROR(env.Unlink(path));
    return env.SyncDir(DirName(path));
  }
  std::string buf(pending.size() * kRecordBytes, '\0');
  size_t i = 0;
  for (const auto& [id, when] : pending) {
    Encode(Record{kReleased, when, id}, reinterpret_cast<std::byte*>(buf.data()) + i * kRecordBytes);
    ++i;
  }
  return WriteFileAtomic(env, path, buf, 0600);
}

}  // namespace sparetime::peerstore
