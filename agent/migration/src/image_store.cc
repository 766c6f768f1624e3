// Image storage (see image_store.h): loading the page store from chunks
// (on all cores), the StoredImage encoding (the image file), index chunks,
// and the migration key file. The writer is image_writer.cc.
//
// Encoded StoredImage, little-endian:
//   "SPTMIGR3" | u64 manifest length L | manifest (L bytes) | key check (32) |
//   u64 chunk count N | N x (chunk id (32) | u32 pages)
// A hole (all-zero id) may span any number of pages, a chunk 1..kChunkPages.
#include "sparetime/migration/image_store.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <unordered_map>

#include "parallel.h"
#include "sparetime/base/bytes.h"
#include "sparetime/base/fd.h"
#include "sparetime/imaging/keys.h"

namespace sparetime::migration {
namespace {

constexpr char kMagic[8] = {'S', 'P', 'T', 'M', 'I', 'G', 'R', '3'};
constexpr size_t kMagicPrefix = 7;  // "SPTMIGR": the last byte is the format
constexpr size_t kEntryBytes = ChunkId::kSize + 4;
constexpr std::string_view kKeyCheckText = "sparetime migration key check v1";

std::string Describe(size_t k, uint64_t first_page, const ChunkRef& c) {
  return "chunk " + std::to_string(k) + " (pages " + std::to_string(first_page) + ".." +
         std::to_string(first_page + c.pages - 1) + ", id " + c.id.short_hex() + ")";
}

}  // namespace

MigrationKey::MigrationKey(SecretBuffer master)
    : master_(std::move(master)),
      codec_(std::make_unique<Codec>(KeySet::Derive(master_), CodecOptions{1})) {}

Result<MigrationKey> MigrationKey::FromSecret(SecretBuffer master) {
  ST_RETURN_IF_ERROR(InitCrypto());
  if (master.size() != kSize)
    return InvalidArgument("a migration key is " + std::to_string(kSize) + " bytes, got " +
                           std::to_string(master.size()) + "; the source agent sent a malformed key");
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

uint64_t StoredImage::page_count() const {
  uint64_t n = 0;
  for (const ChunkRef& c : chunks) n += c.pages;
  return n;
}

Result<ProcessImage> LoadImage(const StoredImage& stored, const MigrationKey& key, ChunkSource& source) {
  if (stored.key_check != key.Check())
    return FailedPrecondition("the image was sealed with another migration key (checkpointed on another host, or "
                              "its key was replaced); restore it with that host's key");
  ST_ASSIGN_OR_RETURN(ProcessImage image, DecodeManifest(stored.manifest, stored.page_count()));
  // Holes cost no bytes in the table: refuse a page store this host could not hold.
  const uint64_t ram_pages = static_cast<uint64_t>(::sysconf(_SC_PHYS_PAGES)) * ::sysconf(_SC_PAGESIZE) / kPageSize;
  if (image.page_count > ram_pages)
    return FailedPrecondition("the image's page store is " + std::to_string(image.page_count) +
                              " pages, more than this host's memory (" + std::to_string(ram_pages) + " pages)");
  image.pages.assign(image.page_count * kPageSize, std::byte{0});  // holes stay zero
  std::vector<uint64_t> at(stored.chunks.size());  // first page of each chunk
  std::unordered_map<ChunkId, size_t, ChunkIdHash> first;  // id -> first chunk holding it
  std::vector<size_t> fetch, copies;
  for (size_t k = 0, page = 0; k < stored.chunks.size(); page += stored.chunks[k].pages, ++k) {
    at[k] = page;
    const ChunkId& id = stored.chunks[k].id;
    if (id.is_hole()) continue;
    (first.emplace(id, k).second ? fetch : copies).push_back(k);
  }
  ST_RETURN_IF_ERROR(ParallelFor(fetch.size(), DefaultThreads(), [&](size_t i) -> Status {
    const size_t k = fetch[i];
    const ChunkRef& c = stored.chunks[k];
    const size_t bytes = c.pages * kPageSize;
    auto sealed = source.Get(c.id);
    if (!sealed.ok()) return sealed.error().WithContext(Describe(k, at[k], c));
    auto plain = key.codec().Open(BlobKind::kData, c.id, *sealed, bytes);
    if (!plain.ok()) return plain.error().WithContext(Describe(k, at[k], c));
    if (plain->size() != bytes)
      return Corruption(Describe(k, at[k], c) + " holds " + std::to_string(plain->size()) + " bytes, not " +
                        std::to_string(c.pages) + " pages");
    std::memcpy(image.pages.data() + at[k] * kPageSize, plain->data(), bytes);
    return Status::Ok();
  }));
  for (size_t k : copies) {
    const size_t from = first.at(stored.chunks[k].id);
    if (stored.chunks[from].pages != stored.chunks[k].pages)
      return Corruption(Describe(k, at[k], stored.chunks[k]) + " repeats " + Describe(from, at[from], stored.chunks[from]) +
                        " with another length");
    std::memcpy(image.pages.data() + at[k] * kPageSize, image.pages.data() + at[from] * kPageSize,
                stored.chunks[k].pages * kPageSize);
  }
  return image;
}

std::string EncodeStoredImage(const StoredImage& stored) {
  std::vector<std::byte> out;
  out.reserve(16 + stored.manifest.size() + ChunkId::kSize + 8 + kEntryBytes * stored.chunks.size());
  AppendBytes(out, std::as_bytes(std::span(kMagic)));
  AppendLe64(out, stored.manifest.size());
  AppendBytes(out, AsBytes(stored.manifest));
  AppendBytes(out, stored.key_check.bytes);
  AppendLe64(out, stored.chunks.size());
  for (const ChunkRef& c : stored.chunks) {
    AppendBytes(out, c.id.bytes);
    AppendLe32(out, c.pages);
  }
  return std::string(reinterpret_cast<const char*>(out.data()), out.size());
}

Result<StoredImage> DecodeStoredImage(std::string_view bytes, const std::string& what) {
  auto bad = [&](const std::string& why) { return Corruption(what + ": " + why); };
  const auto* p = reinterpret_cast<const std::byte*>(bytes.data());
  if (bytes.size() < 16 || std::memcmp(p, kMagic, kMagicPrefix) != 0 ||
      !std::isdigit(static_cast<unsigned char>(bytes[kMagicPrefix])))
    return bad("not a sparetime process image (bad magic)");
  if (p[kMagicPrefix] != std::byte{kMagic[kMagicPrefix]} && std::isdigit(static_cast<unsigned char>(bytes[kMagicPrefix])))
    return bad("a process image of format " + std::string(1, bytes[kMagicPrefix]) +
               "; this sparetime reads format 3 only: checkpoint the process with the sparetime that restores it");
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
  if (n > (bytes.size() - at) / kEntryBytes || bytes.size() - at != n * kEntryBytes)
    return bad("chunk table holds " + std::to_string((bytes.size() - at) / kEntryBytes) + " entries, the header says " +
               std::to_string(n) + " (truncated or trailing bytes)");
  out.chunks.resize(n);
  for (uint64_t i = 0; i < n; ++i, at += kEntryBytes) {
    ChunkRef& c = out.chunks[i];
    c.id = ChunkId::FromBytes(std::span<const std::byte, ChunkId::kSize>(p + at, ChunkId::kSize));
    c.pages = GetLe32(p + at + ChunkId::kSize);
    if (c.pages == 0 || (!c.id.is_hole() && c.pages > kChunkPages))
      return bad("chunk table entry " + std::to_string(i) + " covers " + std::to_string(c.pages) +
                 " pages (a chunk holds 1 to " + std::to_string(kChunkPages) + ")");
  }
  // Validate the manifest against the chunk table now, not at restore time.
  auto image = DecodeManifest(out.manifest, out.page_count());
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
    if (!held) ST_RETURN_IF_ERROR(sink.Put(ids.back(), key.codec().Seal(BlobKind::kManifest, ids.back(), piece)).status());
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
