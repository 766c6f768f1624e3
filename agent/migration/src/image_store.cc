// Image storage (see image_store.h): pages as codec chunks, the StoredImage
// encoding (the image file), index chunks, and the migration key file.
//
// Encoded StoredImage, little-endian:
//   "SPTMIGR2" | u64 manifest length L | manifest (L bytes) | key check (32) |
//   u64 page count N | N chunk ids (32 bytes each)
#include "sparetime/migration/image_store.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unordered_map>
#include <unordered_set>

#include "sparetime/base/bytes.h"
#include "sparetime/base/fd.h"
#include "sparetime/imaging/keys.h"

namespace sparetime::migration {
namespace {

constexpr char kMagic[8] = {'S', 'P', 'T', 'M', 'I', 'G', 'R', '2'};
constexpr std::string_view kKeyCheckText = "sparetime migration key check v1";
constexpr size_t kHeldBatch = 8192;  // ids per HeldQuery call

bool IsZero(std::span<const std::byte> page) {
  return std::all_of(page.begin(), page.end(), [](std::byte b) { return b == std::byte{0}; });
}

std::span<const std::byte> Page(const ProcessImage& image, size_t i) {
  return std::span(image.pages).subspan(i * kPageSize, kPageSize);
}

Result<std::vector<bool>> HeldBySink(ChunkSink& sink, std::span<const ChunkId> ids) {
  std::vector<bool> out;
  out.reserve(ids.size());
  for (const ChunkId& id : ids) {
    ST_ASSIGN_OR_RETURN(bool has, sink.Contains(id));
    out.push_back(has);
  }
  return out;
}

Status PutSealed(ChunkSink& sink, const Codec& codec, BlobKind kind, const ChunkId& id,
                 std::span<const std::byte> plaintext, StoreStats* stats) {
  std::vector<std::byte> sealed = codec.Seal(kind, id, plaintext);
  ST_RETURN_IF_ERROR(sink.Put(id, sealed).status());
  if (stats) {
    ++stats->new_chunks;
    stats->new_bytes += sealed.size();
  }
  return Status::Ok();
}

}  // namespace

MigrationKey::MigrationKey(SecretBuffer master)
    : master_(std::move(master)),
      codec_(std::make_unique<Codec>(KeySet::Derive(master_), CodecOptions{1})) {}

Result<MigrationKey> MigrationKey::FromBytes(std::span<const std::byte> bytes) {
  ST_RETURN_IF_ERROR(InitCrypto());
  if (bytes.size() != kSize)
    return InvalidArgument("a migration key is " + std::to_string(kSize) + " bytes, got " +
                           std::to_string(bytes.size()));
  SecretBuffer master(kSize);
  std::memcpy(master.data(), bytes.data(), kSize);
  return MigrationKey(std::move(master));
}

Result<MigrationKey> MigrationKey::LoadOrCreate(const std::string& path) {
  ST_RETURN_IF_ERROR(InitCrypto());
  auto fd = OpenFile(path, O_RDONLY);
  if (!fd.ok() && fd.error().code() == ErrorCode::kNotFound) {
    // Create under a temporary name and link() it into place: two processes
    // racing here both end up with the one key that won.
    SecretBuffer fresh(kSize);
    randombytes_buf(fresh.data(), kSize);
    const std::string tmp = path + ".new." + std::to_string(::getpid());
    {
      ST_ASSIGN_OR_RETURN(Fd out, OpenFile(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600));
      Status st = WriteFull(out.get(), fresh.span());
      if (st.ok()) st = Fsync(out.get(), tmp);
      if (!st.ok()) {
        ::unlink(tmp.c_str());
        return st.WithContext("creating the migration key " + path);
      }
    }
    const int linked = ::link(tmp.c_str(), path.c_str());
    const int err = errno;
    ::unlink(tmp.c_str());
    if (linked != 0 && err != EEXIST) return ErrnoStatus("creating the migration key " + path, err);
    const size_t slash = path.find_last_of('/');
    ST_RETURN_IF_ERROR(FsyncDir(slash == std::string::npos ? "." : path.substr(0, slash + 1)));
    fd = OpenFile(path, O_RDONLY);
  }
  if (!fd.ok()) return fd.error().WithContext("migration key");
  struct stat st {};
  if (::fstat(fd->get(), &st) != 0) return ErrnoStatus("stat " + path, errno);
  if (st.st_mode & 077)
    return PermissionDenied("migration key " + path + " may be read by other users; run 'chmod 600 " +
                            path + "' (and remove it to make a new key if others could read it)");
  if (static_cast<uint64_t>(st.st_size) != kSize)
    return Corruption("migration key " + path + " is " + std::to_string(st.st_size) + " bytes, not " +
                      std::to_string(kSize) + "; remove it to make a new key (old checkpoints become unreadable)");
  SecretBuffer master(kSize);
  ST_ASSIGN_OR_RETURN(size_t got, ReadFullAt(fd->get(), master.span(), 0));
  if (got != kSize) return Corruption("migration key " + path + " was truncated while reading");
  return MigrationKey(std::move(master));
}

ChunkId MigrationKey::Check() const { return codec_->Id(AsBytes(kKeyCheckText)); }

Result<StoredImage> StoreImage(const ProcessImage& image, const MigrationKey& key, ChunkSink& sink,
                               const HeldQuery& held, StoreStats* stats) {
  const Codec& codec = key.codec();
  StoredImage out;
  ST_ASSIGN_OR_RETURN(out.manifest, EncodeManifest(image));
  out.key_check = key.Check();
  const size_t n = image.page_count();
  out.pages.resize(n);
  std::vector<size_t> unique;  // first page of each distinct non-zero id
  std::unordered_set<ChunkId, ChunkIdHash> seen;
  StoreStats local;
  local.pages = n;
  for (size_t i = 0; i < n; ++i) {
    if (IsZero(Page(image, i))) {
      ++local.zero_pages;
      continue;  // kHoleId
    }
    out.pages[i] = codec.Id(Page(image, i));
    if (seen.insert(out.pages[i]).second) unique.push_back(i);
  }
  local.unique_chunks = unique.size();
  for (size_t b = 0; b < unique.size(); b += kHeldBatch) {
    const size_t e = std::min(unique.size(), b + kHeldBatch);
    std::vector<ChunkId> ids;
    for (size_t k = b; k < e; ++k) ids.push_back(out.pages[unique[k]]);
    auto has = held ? held(ids) : HeldBySink(sink, ids);
    if (!has.ok()) return has.error().WithContext("asking which pages are held");
    if (has->size() != ids.size()) return Internal("held query answered " + std::to_string(has->size()) + " of " +
                                                   std::to_string(ids.size()) + " ids");
    for (size_t k = b; k < e; ++k) {
      if ((*has)[k - b]) continue;
      ST_RETURN_IF_ERROR(PutSealed(sink, codec, BlobKind::kData, out.pages[unique[k]], Page(image, unique[k]), &local));
    }
  }
  ST_RETURN_IF_ERROR(sink.Flush());
  if (stats) *stats = local;
  return out;
}

Result<ProcessImage> LoadImage(const StoredImage& stored, const MigrationKey& key, ChunkSource& source) {
  if (stored.key_check != key.Check())
    return FailedPrecondition("the image was sealed with another migration key (checkpointed on another host, or "
                              "its key was replaced); restore it with that host's key");
  ST_ASSIGN_OR_RETURN(ProcessImage image, DecodeManifest(stored.manifest, stored.pages.size()));
  std::unordered_map<ChunkId, size_t, ChunkIdHash> first;  // id -> first page holding it
  for (size_t i = 0; i < stored.pages.size(); ++i) {
    const ChunkId& id = stored.pages[i];
    if (id.is_hole()) continue;  // the page store is zero-filled
    std::byte* dst = image.pages.data() + i * kPageSize;
    if (auto it = first.find(id); it != first.end()) {
      std::memcpy(dst, image.pages.data() + it->second * kPageSize, kPageSize);
      continue;
    }
    auto sealed = source.Get(id);
    if (!sealed.ok()) return sealed.error().WithContext("page " + std::to_string(i) + " (chunk " + id.short_hex() + ")");
    auto plain = key.codec().Open(BlobKind::kData, id, *sealed, kPageSize);
    if (!plain.ok()) return plain.error().WithContext("page " + std::to_string(i) + " (chunk " + id.short_hex() + ")");
    if (plain->size() != kPageSize)
      return Corruption("page " + std::to_string(i) + " (chunk " + id.short_hex() + ") is " +
                        std::to_string(plain->size()) + " bytes, not a page");
    std::memcpy(dst, plain->data(), kPageSize);
    first.emplace(id, i);
  }
  return image;
}

std::string EncodeStoredImage(const StoredImage& stored) {
  std::vector<std::byte> out;
  out.reserve(16 + stored.manifest.size() + ChunkId::kSize * (stored.pages.size() + 1) + 8);
  AppendBytes(out, std::as_bytes(std::span(kMagic)));
  AppendLe64(out, stored.manifest.size());
  AppendBytes(out, AsBytes(stored.manifest));
  AppendBytes(out, stored.key_check.bytes);
  AppendLe64(out, stored.pages.size());
  for (const ChunkId& id : stored.pages) AppendBytes(out, id.bytes);
  return std::string(reinterpret_cast<const char*>(out.data()), out.size());
}

Result<StoredImage> DecodeStoredImage(std::string_view bytes, const std::string& what) {
  auto bad = [&](const std::string& why) { return Corruption(what + ": " + why); };
  const auto* p = reinterpret_cast<const std::byte*>(bytes.data());
  if (bytes.size() < 16 || std::memcmp(p, kMagic, sizeof kMagic) != 0)
    return bad("not a sparetime process image (bad magic; images of format 1 are no longer read)");
  const uint64_t len = GetLe64(p + 8);
  size_t at = 16;
  if (len > bytes.size() - at || bytes.size() - at - len < ChunkId::kSize + 8)
    return bad("manifest length runs past the end");
  StoredImage out;
  out.manifest.assign(bytes.substr(at, len));
  at += len;
  out.key_check = ChunkId::FromBytes(std::span<const std::byte, ChunkId::kSize>(p + at, ChunkId::kSize));
  at += ChunkId::kSize;
  const uint64_t n = GetLe64(p + at);
  at += 8;
  if (n > (bytes.size() - at) / ChunkId::kSize || bytes.size() - at != n * ChunkId::kSize)
    return bad("page table holds " + std::to_string((bytes.size() - at) / ChunkId::kSize) + " ids, the header says " +
               std::to_string(n) + " (truncated or trailing bytes)");
  out.pages.resize(n);
  for (uint64_t i = 0; i < n; ++i, at += ChunkId::kSize)
    out.pages[i] = ChunkId::FromBytes(std::span<const std::byte, ChunkId::kSize>(p + at, ChunkId::kSize));
  // Validate the manifest against the page table now, not at restore time.
  auto image = DecodeManifest(out.manifest, n);
  if (!image.ok()) return image.error().WithContext(what);
  return out;
}

Status WriteImageFile(const StoredImage& stored, const std::string& path) {
  return WriteFileAtomic(path, EncodeStoredImage(stored), 0600);
}

Result<StoredImage> ReadImageFile(const std::string& path) {
  ST_ASSIGN_OR_RETURN(std::string data, ReadFileToString(path));
  return DecodeStoredImage(data, path);
}

Result<std::vector<ChunkId>> StoreIndex(const StoredImage& stored, const MigrationKey& key, ChunkSink& sink) {
  const std::string bytes = EncodeStoredImage(stored);
  std::vector<ChunkId> ids;
  for (size_t at = 0; at < bytes.size(); at += kIndexChunkBytes) {
    auto piece = AsBytes(std::string_view(bytes).substr(at, kIndexChunkBytes));
    ids.push_back(key.codec().Id(piece));
    ST_ASSIGN_OR_RETURN(bool held, sink.Contains(ids.back()));
    if (!held) ST_RETURN_IF_ERROR(PutSealed(sink, key.codec(), BlobKind::kManifest, ids.back(), piece, nullptr));
  }
  ST_RETURN_IF_ERROR(sink.Flush());
  return ids;
}

Result<StoredImage> LoadIndex(std::span<const ChunkId> index, const MigrationKey& key, ChunkSource& source) {
  std::string bytes;
  for (size_t i = 0; i < index.size(); ++i) {
    auto sealed = source.Get(index[i]);
    if (!sealed.ok()) return sealed.error().WithContext("migration index chunk " + std::to_string(i));
    auto plain = key.codec().Open(BlobKind::kManifest, index[i], *sealed, kIndexChunkBytes);
    if (!plain.ok()) return plain.error().WithContext("migration index chunk " + std::to_string(i));
    bytes.append(reinterpret_cast<const char*>(plain->data()), plain->size());
  }
  return DecodeStoredImage(bytes, "migration index");
}

}  // namespace sparetime::migration
