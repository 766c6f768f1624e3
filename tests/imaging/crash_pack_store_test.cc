// Crash tests for the PackStore over a FaultEnv: create a store, store three
// flushed batches (packs roll every few records), remove two chunks; cut the
// power at every sync point (the pack fsyncs, the directory fsyncs and
// SQLite's own WAL fsyncs), then reopen with the real code and check that
// every acknowledged chunk reads back byte for byte, every indexed chunk has
// its bytes (Get and Scrub), acknowledged removals stayed removed, and the
// store takes new writes. The same workload with EIO/ENOSPC at every
// mutation must report the error as a Status with the matching code, and
// stay consistent after a power cut on top.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "crash_testing.h"
#include "pack_store_testing.h"
#include "sparetime/imaging/pack_store.h"
#include "testutil/fault_env.h"
#include "testutil/testutil.h"

namespace sparetime {
namespace {

using testing::CrashPoint;
using testing::FaultEnv;
using testing::TempDir;
using testing::TestBlob;
using testing::TestChunkId;

constexpr size_t kBlob = 700;
constexpr uint64_t kBatches = 3, kPerBatch = 4;
constexpr uint64_t kRemoved[] = {0, 5};

PackStoreOptions Options(Env* env) {
  PackStoreOptions o;
  o.target_pack_bytes = 2500;  // three records a pack: Puts roll packs mid-batch
  o.env = env;
  return o;
}

// What the workload was told succeeded.
struct Acked {
  bool created = false;
  std::set<uint64_t> chunks;  // flushed
  bool removing = false;      // Remove was called: kRemoved may be gone
  bool removed = false;       // Remove returned OK: kRemoved are gone
  Status error;               // the first failure
};

Acked RunWorkload(const std::string& dir, Env& env) {
  Acked a;
  auto store = PackStore::Create(dir, Options(&env));
  if (!store.ok()) {
    a.error = store.status();
    return a;
  }
  a.created = true;
  for (uint64_t b = 0; b < kBatches; ++b) {
    for (uint64_t i = 0; i < kPerBatch; ++i) {
      const uint64_t n = b * kPerBatch + i;
      Result<bool> put = (*store)->Put(TestChunkId(n), TestBlob(n, kBlob));
      if (!put.ok()) {
        a.error = put.status();
        return a;
      }
    }
    if (Status st = (*store)->Flush(); !st.ok()) {
      a.error = st;
      return a;
    }
    for (uint64_t i = 0; i < kPerBatch; ++i) a.chunks.insert(b * kPerBatch + i);
  }
  std::vector<ChunkId> ids;
  for (uint64_t n : kRemoved) ids.push_back(TestChunkId(n));
  a.removing = true;
  if (Status st = (*store)->Remove(ids); !st.ok()) {
    a.error = st;
    return a;
  }
  a.removed = true;
  return a;
}

// Checks the store at `dir` after a power cut against what was acknowledged.
void CheckReopened(const std::string& dir, const Acked& acked) {
  auto store = PackStore::Open(dir, Options(Env::Default()));
  if (!acked.created && !store.ok()) {
    EXPECT_EQ(store.status().code(), ErrorCode::kNotFound) << store.status().ToString();
    return;
  }
  ASSERT_TRUE(store.ok()) << "a store whose Create returned OK must reopen: "
                          << store.status().ToString();
  std::map<ChunkId, uint64_t> known;
  for (uint64_t n = 0; n < kBatches * kPerBatch; ++n) known[TestChunkId(n)] = n;
  const std::set<uint64_t> removed(std::begin(kRemoved), std::end(kRemoved));
  for (uint64_t n : acked.chunks) {
    if (acked.removing && removed.contains(n)) continue;  // the removal may have committed
    Result<std::vector<std::byte>> got = (*store)->Get(TestChunkId(n));
    ASSERT_TRUE(got.ok()) << "acknowledged chunk " << n << " lost: " << got.status().ToString();
    EXPECT_EQ(*got, TestBlob(n, kBlob)) << "chunk " << n;
  }
  if (acked.removed) {
    for (uint64_t n : kRemoved) EXPECT_FALSE(*(*store)->Contains(TestChunkId(n))) << n;
  }
  // No chunk indexed without its bytes.
  Result<std::vector<StoredChunk>> listed = (*store)->ListStored();
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  for (const StoredChunk& c : *listed) {
    auto it = known.find(c.id);
    ASSERT_NE(it, known.end()) << "an unknown chunk is indexed: " << c.id.hex();
    Result<std::vector<std::byte>> got = (*store)->Get(c.id);
    ASSERT_TRUE(got.ok()) << "indexed chunk " << it->second
                          << " has no bytes: " << got.status().ToString();
    EXPECT_EQ(*got, TestBlob(it->second, kBlob)) << "chunk " << it->second;
  }
  uint64_t bad = 0;
  Result<uint64_t> scrubbed = (*store)->Scrub([&](const ChunkId&, const Status&) { ++bad; });
  ASSERT_TRUE(scrubbed.ok()) << scrubbed.status().ToString();
  EXPECT_EQ(*scrubbed, listed->size());
  EXPECT_EQ(bad, 0u);
  // The store takes new writes.
  {
    Result<bool> put999 = (*store)->Put(TestChunkId(999), TestBlob(999, kBlob));
    ASSERT_TRUE(put999.ok()) << put999.status().ToString();
  }
  ASSERT_TRUE((*store)->Flush().ok());
  testing::ExpectChunk(**store, 999, kBlob);
}

class CrashPackStoreTest : public ::testing::Test {
 protected:
  void Reset() { std::filesystem::remove_all(dir()); }
  std::string dir() const { return tmp_ / "store"; }

  TempDir tmp_;
  FaultEnv env_;
};

TEST_F(CrashPackStoreTest, PowerCutAtEverySyncPointLosesNoAcknowledgedChunk) {
  Acked acked;
  uint64_t reopened_with_chunks = 0;
  const uint64_t points = testing::CrashAtEverySyncPoint(
      env_, [&] { Reset(); }, [&] { acked = RunWorkload(dir(), env_); },
      [&](const CrashPoint& p) {
        // The last sync points are SQLite's checkpoint when the store closes,
        // where nobody is left to tell; what was acknowledged must be there.
        if (p.k == p.total) {
          EXPECT_TRUE(acked.error.ok()) << acked.error.ToString();
        }
        CheckReopened(dir(), acked);
        if (!acked.chunks.empty()) ++reopened_with_chunks;
      });
  // Create, 5 packs, 4 flushes (3 + the roll's), the removal: dozens of points.
  EXPECT_GE(points, 30u);
  // At least half the cuts fall after some chunk was acknowledged.
  EXPECT_GE(reopened_with_chunks, points / 2);
}

TEST_F(CrashPackStoreTest, EioAndEnospcAtEveryMutationSurfaceAndStayConsistent) {
  Acked acked;
  uint64_t surfaced = 0, absorbed = 0;
  const uint64_t mutations = testing::FailEveryMutation(
      env_, [&] { Reset(); }, [&] { acked = RunWorkload(dir(), env_); },
      [&](const CrashPoint& p) {
        if (!acked.error.ok()) {
          ++surfaced;
          EXPECT_EQ(acked.error.code(), testing::CodeFor(p.error)) << acked.error.ToString();
        } else {
          ++absorbed;  // a best-effort step (cleanup, hint) failed: data must still be whole
        }
        CheckReopened(dir(), acked);
      });
  EXPECT_GE(mutations, 50u);
  EXPECT_GT(surfaced, mutations * 3 / 4) << absorbed << " faults were absorbed";
  std::cout << "pack store: " << mutations << " mutations, " << surfaced << " faults surfaced, "
            << absorbed << " absorbed\n";
}

}  // namespace
}  // namespace sparetime
