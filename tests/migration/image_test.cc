// ProcessImage storage: the manifest round trip of every field group, pages
// as deduplicated chunks cut on the mapping's 16-page grid (zero pages as
// holes, a similar image adds only its changed chunk, the same data in a
// mapping elsewhere adds nothing), the streaming writer, the image file and
// index chunks, the key check, and refusal of damaged, foreign and older
// files.
#include "sparetime/migration/image.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <sys/user.h>

#include <filesystem>
#include <fstream>
#include <optional>

#include "sparetime/imaging/pack_store.h"
#include "sparetime/migration/image_store.h"

#include "testutil/testutil.h"

namespace sparetime::migration {
namespace {

using sparetime::testing::TempDir;
using sparetime::PackStore;

// `pages` (whole pages) as the only saved run of an anonymous mapping at
// `start`, `offset` pages into it; the vDSO code is the last page.
ProcessImage ImageWith(const std::vector<std::byte>& pages, uint64_t start, uint64_t offset);

ProcessImage SampleImage() {
  ProcessImage im;
  im.pid = 4242;
  im.comm = "sample";
  im.kernel_release = "6.18.0";
  im.regs.assign(sizeof(user_regs_struct), std::byte{7});
  im.xstate.assign(2440, std::byte{9});
  im.xcr0 = 0x207;
  im.page_count = 3;
  im.pages.assign(3 * kPageSize, std::byte{0});
  im.pages[kPageSize] = std::byte{0x42};
  Mapping m;
  m.kind = Mapping::Kind::kPrivateFile;
  m.start = 0x400000;
  m.end = 0x403000;
  m.prot = 3;
  m.path = "/bin/true";
  m.file = {1234, 5678};
  m.pages.push_back({0x401000, 2, 0});
  im.mappings.push_back(m);
  im.vdso.areas = {{"[vvar]", 0x7f0000000000, 0x7f0000004000}, {"[vdso]", 0x7f0000004000, 0x7f0000005000}};
  im.vdso.code = {0x7f0000004000, 1, 2};
  im.mm.brk = 0x600000;
  im.auxv = {std::byte{1}, std::byte{2}};
  im.exe_path = "/bin/true";
  im.actions.push_back({10, 0x401234, 0x14000000, 0x405678, 0});
  PendingSignal p;
  p.shared = true;
  p.info[0] = std::byte{10};
  im.pending.push_back(p);
  im.itimers[0] = {0, 5000, 0, 1000};
  FdEntry f;
  f.fd = 3;
  f.path = "/tmp/x";
  f.flags = 01;
  f.offset = 99;
  im.fds.push_back(f);
  FdEntry d;
  d.fd = 4;
  d.kind = FdEntry::Kind::kDup;
  d.dup_of = 3;
  im.fds.push_back(d);
  FdEntry dir;  // no FileIdentity: a directory is only checked for existence
  dir.fd = 5;
  dir.kind = FdEntry::Kind::kDirectory;
  dir.path = "/tmp";
  dir.flags = 0200000;  // O_DIRECTORY
  dir.offset = 7;
  im.fds.push_back(dir);
  im.pipes.push_back({77, 65536, {std::byte{'h'}, std::byte{'i'}}});
  im.cwd = "/";
  im.rlimits[7] = {1024, 4096};
  im.creds.groups = {1, 2};
  return im;
}

ProcessImage ImageWith(const std::vector<std::byte>& pages, uint64_t start, uint64_t offset) {
  ProcessImage im = SampleImage();
  const uint64_t n = pages.size() / kPageSize;
  im.pages = pages;
  im.pages.resize(im.pages.size() + kPageSize, std::byte{0x5a});  // the vDSO code
  im.page_count = n + 1;
  Mapping& m = im.mappings[0];
  m.kind = Mapping::Kind::kPrivateAnon;
  m.path.clear();
  m.start = start;
  m.end = start + (offset + n + 3) * kPageSize;
  m.pages = {{start + offset * kPageSize, n, 0}};
  im.vdso.code = {0x7f0000004000, 1, n};
  return im;
}

class ImageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto key = MigrationKey::LoadOrCreate(tmp_ / "key");
    ASSERT_TRUE(key.ok()) << key.error().ToString();
    key_.emplace(std::move(*key));
    auto store = PackStore::Create(tmp_ / "store");
    ASSERT_TRUE(store.ok()) << store.error().ToString();
    store_ = std::move(*store);
  }

  TempDir tmp_;
  std::optional<MigrationKey> key_;
  std::unique_ptr<PackStore> store_;
};

TEST_F(ImageTest, RoundTripsThroughChunksAndAFile) {
  ProcessImage im = SampleImage();
  StoreStats stats;
  auto stored = StoreImage(im, *key_, *store_, {}, &stats);
  ASSERT_TRUE(stored.ok()) << stored.error().ToString();
  EXPECT_EQ(stats.pages, 3u);
  EXPECT_EQ(stats.zero_pages, 2u);  // holes: never stored
  EXPECT_EQ(stats.new_chunks, 1u);
  ASSERT_EQ(stored->chunks.size(), 3u);
  EXPECT_TRUE(stored->chunks[0].id.is_hole());
  EXPECT_EQ(stored->chunks[1].pages, 1u);
  EXPECT_FALSE(stored->chunks[1].id.is_hole());
  EXPECT_TRUE(stored->chunks[2].id.is_hole());
  ASSERT_TRUE(WriteImageFile(*stored, tmp_ / "img").ok());
  EXPECT_EQ(std::filesystem::status(tmp_.path() + "/img").permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  auto file = ReadImageFile(tmp_ / "img");
  ASSERT_TRUE(file.ok()) << file.error().ToString();
  auto back = LoadImage(*file, *key_, *store_);
  ASSERT_TRUE(back.ok()) << back.error().ToString();
  EXPECT_EQ(back->pid, 4242);
  EXPECT_EQ(back->regs, im.regs);
  EXPECT_EQ(back->xstate, im.xstate);
  EXPECT_EQ(back->pages, im.pages);
  ASSERT_EQ(back->mappings.size(), 1u);
  EXPECT_EQ(back->mappings[0].kind, Mapping::Kind::kPrivateFile);
  EXPECT_EQ(back->mappings[0].pages[0].count, 2u);
  EXPECT_EQ(back->mappings[0].file.mtime_ns, 5678);
  EXPECT_EQ(back->vdso.areas[1].name, "[vdso]");
  EXPECT_EQ(back->actions[0].restorer, 0x405678u);
  EXPECT_TRUE(back->pending[0].shared);
  EXPECT_EQ(back->pending[0].info, im.pending[0].info);
  EXPECT_EQ(back->itimers[0].interval_usec, 5000);
  EXPECT_EQ(back->fds[1].kind, FdEntry::Kind::kDup);
  EXPECT_EQ(back->fds[0].offset, 99u);
  EXPECT_EQ(back->fds[2].kind, FdEntry::Kind::kDirectory);
  EXPECT_EQ(back->fds[2].path, "/tmp");
  EXPECT_EQ(back->fds[2].offset, 7u);
  EXPECT_EQ(back->pipes[0].data, im.pipes[0].data);
  EXPECT_EQ(back->rlimits[7][1], 4096u);
  EXPECT_EQ(back->creds.groups, im.creds.groups);
}

TEST_F(ImageTest, RepeatedChunksAreStoredOnceAndASimilarImageAddsOnlyItsChangedChunk) {
  auto data = sparetime::testing::RandomBytes(64 * kPageSize, 7);
  std::vector<std::byte> twice = data;
  twice.insert(twice.end(), data.begin(), data.end());
  ProcessImage im = ImageWith(twice, 0x10000000, 0);
  StoreStats first;
  auto stored = StoreImage(im, *key_, *store_, {}, &first);
  ASSERT_TRUE(stored.ok()) << stored.error().ToString();
  EXPECT_EQ(first.chunks, 9u);  // 8 grid cells of 16 pages, and the vDSO page
  EXPECT_EQ(first.unique_chunks, 5u);
  EXPECT_EQ(first.new_chunks, 5u);
  // A "similar process": one page differs, one chunk is new.
  im.pages[5 * kPageSize] ^= std::byte{1};
  StoreStats second;
  stored = StoreImage(im, *key_, *store_, {}, &second);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(second.new_chunks, 1u);
  EXPECT_LT(second.new_bytes * 4, first.new_bytes);
  auto back = LoadImage(*stored, *key_, *store_);
  ASSERT_TRUE(back.ok()) << back.error().ToString();
  EXPECT_EQ(back->pages, im.pages);
}

// The grid counts from the mapping's start: the same data at the same place
// of a mapping mapped elsewhere (ASLR) gives the same chunks; chunks never
// cross a grid line or a zero page.
TEST_F(ImageTest, ChunksFollowTheMappingGridWhereverItIsMapped) {
  auto data = sparetime::testing::RandomBytes(40 * kPageSize, 8);
  std::fill_n(data.begin() + 20 * kPageSize, kPageSize, std::byte{0});  // page 25 of the mapping
  ProcessImage im = ImageWith(data, 0x10000000, 5);
  StoreStats first;
  auto stored = StoreImage(im, *key_, *store_, {}, &first);
  ASSERT_TRUE(stored.ok()) << stored.error().ToString();
  // Pages 5..44 of the mapping: 5-15 | 16-24 | hole 25 | 26-31 | 32-44 | the vDSO page.
  std::vector<uint32_t> sizes;
  for (const ChunkRef& c : stored->chunks) sizes.push_back(c.pages);
  EXPECT_EQ(sizes, (std::vector<uint32_t>{11, 9, 1, 6, 13, 1}));
  EXPECT_TRUE(stored->chunks[2].id.is_hole());
  EXPECT_EQ(first.zero_pages, 1u);

  StoreStats moved;
  auto elsewhere = StoreImage(ImageWith(data, 0x7f1234567000, 5), *key_, *store_, {}, &moved);
  ASSERT_TRUE(elsewhere.ok());
  EXPECT_EQ(moved.new_chunks, 0u);
  EXPECT_EQ(elsewhere->chunks, stored->chunks);

  StoreStats shifted;  // one page further into its mapping: other cuts, other ids
  ASSERT_TRUE(StoreImage(ImageWith(data, 0x10000000, 6), *key_, *store_, {}, &shifted).ok());
  EXPECT_GT(shifted.new_chunks, 0u);
}

// The dump's path: pages streamed into an ImageWriter in pieces give the
// same image as StoreImage of the whole, with one batch in memory at a time.
TEST_F(ImageTest, StreamedPagesMatchTheWholeImage) {
  auto data = sparetime::testing::RandomBytes(3000 * kPageSize, 9);  // 11.7 MiB: two writer batches
  ProcessImage whole = ImageWith(data, 0x20000000, 0);
  auto expected = StoreImage(whole, *key_, *store_);
  ASSERT_TRUE(expected.ok()) << expected.error().ToString();

  auto other = PackStore::Create(tmp_ / "streamed");
  ASSERT_TRUE(other.ok());
  ImageWriter writer(*key_, **other, {}, 3);
  ProcessImage streamed = whole;
  for (uint64_t at = 0; at < 3000; at += 1024) {  // the dump reads 1024-page pieces
    const uint64_t n = std::min<uint64_t>(1024, 3000 - at);
    ASSERT_TRUE(writer.Append(0x20000000, 0x20000000 + at * kPageSize,
                              std::span(data).subspan(at * kPageSize, n * kPageSize)).ok());
  }
  ASSERT_TRUE(writer.Append(0x7f0000004000, 0x7f0000004000, std::span(whole.pages).last(kPageSize)).ok());
  streamed.pages.clear();  // a streamed dump keeps no pages
  StoreStats stats;
  auto stored = writer.Finish(streamed, &stats);
  ASSERT_TRUE(stored.ok()) << stored.error().ToString();
  EXPECT_EQ(stored->chunks, expected->chunks);
  EXPECT_EQ(stats.new_chunks, 189u);  // ceil(3000 / 16) and the vDSO page
  auto back = LoadImage(*stored, *key_, **other);
  ASSERT_TRUE(back.ok()) << back.error().ToString();
  EXPECT_EQ(back->pages, whole.pages);

  // A chunk missing from the store is named with its pages.
  ASSERT_TRUE((*other)->Remove(std::span(&stored->chunks[3].id, 1)).ok());
  auto missing = LoadImage(*stored, *key_, **other);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message().find("chunk 3 (pages 48..63"), std::string::npos) << missing.error().ToString();
}

TEST_F(ImageTest, IndexChunksCarryALargeImage) {
  std::vector<std::byte> pages(60000 * kPageSize, std::byte{0});  // every other page zero: 60000 table entries
  for (size_t i = 1; i < 60000; i += 2) pages[i * kPageSize] = std::byte(i % 251 + 1);
  ProcessImage im = ImageWith(pages, 0x10000000, 0);
  auto stored = StoreImage(im, *key_, *store_);
  ASSERT_TRUE(stored.ok());
  auto index = StoreIndex(*stored, *key_, *store_);
  ASSERT_TRUE(index.ok()) << index.error().ToString();
  EXPECT_EQ(index->size(), 3u);  // 2.1 MB of table
  auto back = LoadIndex(*index, *key_, *store_);
  ASSERT_TRUE(back.ok()) << back.error().ToString();
  EXPECT_EQ(back->chunks, stored->chunks);
  EXPECT_EQ(back->manifest, stored->manifest);
}

TEST_F(ImageTest, AnotherKeyIsRefusedUpFront) {
  auto stored = StoreImage(SampleImage(), *key_, *store_);
  ASSERT_TRUE(stored.ok());
  auto other = MigrationKey::LoadOrCreate(tmp_ / "other-key");
  ASSERT_TRUE(other.ok());
  auto back = LoadImage(*stored, *other, *store_);
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(back.error().message().find("another migration key"), std::string::npos);
  // The same key file loads the same key.
  auto again = MigrationKey::LoadOrCreate(tmp_ / "key");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->Check(), key_->Check());
  ::chmod((tmp_ / "key").c_str(), 0644);
  auto exposed = MigrationKey::LoadOrCreate(tmp_ / "key");
  ASSERT_FALSE(exposed.ok());
  EXPECT_EQ(exposed.error().code(), ErrorCode::kPermissionDenied);
}

TEST_F(ImageTest, RejectsForeignTruncatedAndInconsistentFiles) {
  std::ofstream(tmp_ / "foreign") << "not an image at all, clearly";
  auto foreign = ReadImageFile(tmp_ / "foreign");
  ASSERT_FALSE(foreign.ok());
  EXPECT_EQ(foreign.error().code(), ErrorCode::kCorruption);
  EXPECT_NE(foreign.error().message().find("bad magic"), std::string::npos);

  auto stored = StoreImage(SampleImage(), *key_, *store_);
  ASSERT_TRUE(stored.ok());
  ASSERT_TRUE(WriteImageFile(*stored, tmp_ / "img").ok());
  auto bytes = sparetime::testing::ReadFileOrDie(tmp_ / "img");
  bytes.resize(bytes.size() - 10);
  sparetime::testing::WriteFileOrDie(tmp_ / "cut", bytes);
  auto cut = ReadImageFile(tmp_ / "cut");
  ASSERT_FALSE(cut.ok());
  EXPECT_EQ(cut.error().code(), ErrorCode::kCorruption);
  EXPECT_NE(cut.error().message().find("truncated"), std::string::npos) << cut.error().ToString();

  ProcessImage bad = SampleImage();
  bad.mappings[0].pages[0].first = 2;  // runs past the 3-page store
  auto refused = StoreImage(bad, *key_, *store_);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), ErrorCode::kInvalidArgument);
  StoredImage inconsistent_stored = *stored;
  auto bad_manifest = EncodeManifest(bad);
  ASSERT_TRUE(bad_manifest.ok());
  inconsistent_stored.manifest = *bad_manifest;
  ASSERT_TRUE(WriteImageFile(inconsistent_stored, tmp_ / "bad").ok());
  auto inconsistent = ReadImageFile(tmp_ / "bad");
  ASSERT_FALSE(inconsistent.ok());
  EXPECT_NE(inconsistent.error().message().find("outside"), std::string::npos) << inconsistent.error().ToString();

  auto older = bytes;  // format 2: one id per page
  older[7] = std::byte{'2'};
  sparetime::testing::WriteFileOrDie(tmp_ / "v2", older);
  auto v2 = ReadImageFile(tmp_ / "v2");
  ASSERT_FALSE(v2.ok());
  EXPECT_NE(v2.error().message().find("format 2; this sparetime reads format 3 only"), std::string::npos)
      << v2.error().ToString();

  ProcessImage future = SampleImage();
  future.version = 99;
  auto future_manifest = EncodeManifest(future);
  ASSERT_TRUE(future_manifest.ok()) << future_manifest.error().ToString();
  auto decoded = DecodeManifest(*future_manifest, future.page_count);
  ASSERT_FALSE(decoded.ok());
  EXPECT_NE(decoded.error().message().find("version 99"), std::string::npos);
}

// Kinds travel by name, and a name or value the format does not know is an
// error: never the first kind in the list (a directory fd once came back as
// a "file" of size 0 and failed the restore's file check).
TEST_F(ImageTest, FdKindsTravelByNameAndUnknownKindsAreRefused) {
  ProcessImage im = SampleImage();
  auto manifest = EncodeManifest(im);
  ASSERT_TRUE(manifest.ok()) << manifest.error().ToString();
  auto json = nlohmann::json::parse(*manifest);
  EXPECT_EQ(json["fds"][2]["kind"], "directory");
  EXPECT_EQ(json["mappings"][0]["kind"], "private_file");

  json["fds"][2]["kind"] = "socket";
  auto decoded = DecodeManifest(json.dump(), im.page_count);
  ASSERT_FALSE(decoded.ok()) << "decoded fd 5 as kind " << static_cast<int>(decoded->fds[2].kind);
  EXPECT_EQ(decoded.error().code(), ErrorCode::kCorruption);
  EXPECT_NE(decoded.error().message().find("unknown fd kind 'socket'"), std::string::npos)
      << decoded.error().ToString();

  json = nlohmann::json::parse(*manifest);
  json["mappings"][0]["kind"] = "hugetlb";
  decoded = DecodeManifest(json.dump(), im.page_count);
  ASSERT_FALSE(decoded.ok());
  EXPECT_NE(decoded.error().message().find("unknown mapping kind 'hugetlb'"), std::string::npos)
      << decoded.error().ToString();

  im.fds[2].kind = static_cast<FdEntry::Kind>(42);
  auto unnamed = EncodeManifest(im);
  ASSERT_FALSE(unnamed.ok()) << "written as " << *unnamed;
  EXPECT_NE(unnamed.error().message().find("fd kind 42"), std::string::npos) << unnamed.error().ToString();
  auto stored = StoreImage(im, *key_, *store_);
  EXPECT_FALSE(stored.ok()) << "StoreImage must not write a manifest it cannot encode";
}

}  // namespace
}  // namespace sparetime::migration

namespace sparetime::migration {
namespace {

ThreadImage SampleThread(pid_t tid) {
  ThreadImage t;
  t.tid = tid;
  t.comm = "worker-" + std::to_string(tid);
  t.regs.assign(sizeof(user_regs_struct), std::byte{static_cast<unsigned char>(tid)});
  t.xstate = SampleImage().xstate;
  t.blocked = 0x1234;
  PendingSignal p;
  p.info[0] = std::byte{10};
  t.pending.push_back(p);
  t.altstack_sp = 0x7000;
  t.altstack_size = 65536;
  t.tid_address = 0x5000 + static_cast<uint64_t>(tid);
  t.robust_list = 0x6000;
  t.robust_list_len = 24;
  t.rseq_addr = 0x8000;
  t.rseq_len = 32;
  t.rseq_sig = 0x53053053;
  return t;
}

// Format 4 carries every thread's state; format 3 manifests (stage 1, one
// thread) are still read; a format-3 manifest cannot carry threads.
TEST(ImageThreadsTest, ThreadsRoundTripAndFormat3IsStillRead) {
  ProcessImage im = SampleImage();
  im.threads = {SampleThread(im.pid + 1), SampleThread(im.pid + 7)};
  auto manifest = EncodeManifest(im);
  ASSERT_TRUE(manifest.ok()) << manifest.error().ToString();
  auto decoded = DecodeManifest(*manifest, im.page_count);
  ASSERT_TRUE(decoded.ok()) << decoded.error().ToString();
  EXPECT_EQ(decoded->version, 4u);
  ASSERT_EQ(decoded->threads.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const ThreadImage &a = im.threads[i], &b = decoded->threads[i];
    EXPECT_EQ(b.tid, a.tid);
    EXPECT_EQ(b.comm, a.comm);
    EXPECT_EQ(b.regs, a.regs);
    EXPECT_EQ(b.xstate, a.xstate);
    EXPECT_EQ(b.blocked, a.blocked);
    ASSERT_EQ(b.pending.size(), 1u);
    EXPECT_EQ(b.pending[0].info, a.pending[0].info);
    EXPECT_EQ(b.altstack_size, a.altstack_size);
    EXPECT_EQ(b.tid_address, a.tid_address);
    EXPECT_EQ(b.robust_list, a.robust_list);
    EXPECT_EQ(b.robust_list_len, a.robust_list_len);
    EXPECT_EQ(b.rseq_addr, a.rseq_addr);
    EXPECT_EQ(b.rseq_sig, a.rseq_sig);
  }

  // The leader's per-thread view and back.
  ThreadImage leader = LeaderThread(im);
  EXPECT_EQ(leader.tid, im.pid);
  EXPECT_EQ(leader.regs, im.regs);
  ProcessImage copy = im;
  SetLeaderThread(copy, SampleThread(im.pid));
  EXPECT_EQ(copy.tid_address, 0x5000u + static_cast<uint64_t>(im.pid));
  EXPECT_EQ(copy.blocked, 0x1234u);

  ProcessImage v3 = SampleImage();
  v3.version = 3;
  auto v3_manifest = EncodeManifest(v3);
  ASSERT_TRUE(v3_manifest.ok()) << v3_manifest.error().ToString();
  EXPECT_EQ(nlohmann::json::parse(*v3_manifest).count("threads"), 0u);
  auto v3_decoded = DecodeManifest(*v3_manifest, v3.page_count);
  ASSERT_TRUE(v3_decoded.ok()) << v3_decoded.error().ToString();
  EXPECT_EQ(v3_decoded->version, 3u);
  EXPECT_TRUE(v3_decoded->threads.empty());
  v3.threads = im.threads;
  auto refused = EncodeManifest(v3);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), ErrorCode::kInvalidArgument);

  ProcessImage unsorted = im;
  std::swap(unsorted.threads[0], unsorted.threads[1]);
  auto bad = EncodeManifest(unsorted);
  ASSERT_TRUE(bad.ok());
  auto bad_decoded = DecodeManifest(*bad, unsorted.page_count);
  ASSERT_FALSE(bad_decoded.ok());
  EXPECT_EQ(bad_decoded.error().code(), ErrorCode::kCorruption);
  EXPECT_NE(bad_decoded.error().message().find("out of order"), std::string::npos) << bad_decoded.error().ToString();
}

}  // namespace
}  // namespace sparetime::migration
