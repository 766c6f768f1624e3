// Crash tests for the PeerStore over a FaultEnv: an owner's key, chunk
// batches (each Put... then Flush), manifest roots of two generations, a key
// replacement, a release, a chunk released and stored again, and a Collect
// after the grace (expired releases out, old roots generation deleted,
// packs repacked) run with the power cut at every sync point, or
// with EIO/ENOSPC at every mutation. After the cut the reopened store must
// be in the state after the last acknowledged operation or after the one
// that was running — held chunks read back byte for byte, key and roots
// whole and never rolled back, usage counted from what is really there.
// The reference states come from the same operations outside the FaultEnv.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>

#include "../imaging/crash_testing.h"
#include "sparetime/base/bytes.h"
#include "sparetime/peerstore/peer_store.h"
#include "testutil/fake_clock.h"
#include "testutil/fault_env.h"
#include "testutil/testutil.h"

namespace sparetime::peerstore {
namespace {

using sparetime::testing::CrashPoint;
using sparetime::testing::FaultEnv;
using sparetime::testing::TempDir;
using sparetime::testing::TestChunkId;

constexpr size_t kBlob = 900;
constexpr uint64_t kChunks = 8;
const PeerStoreLimits kLimits{1 << 20, 0};

std::vector<std::byte> Blob(uint64_t n) { return sparetime::testing::RandomBytes(kBlob, n + 77); }
std::vector<std::byte> Bytes(const std::string& s) {
  auto b = AsBytes(s);
  return {b.begin(), b.end()};
}

using Op = std::function<Status(PeerStore&)>;

// The store's clock: reset to the same start for every run, so a run and
// the reference see the same release times.
sparetime::testing::FakeClock g_clock;
const auto kStart = std::chrono::system_clock::from_time_t(1717416000);

std::vector<Op> Operations() {
  auto batch = [](uint64_t first, uint64_t n) -> Op {
    return [=](PeerStore& s) {
      for (uint64_t i = first; i < first + n; ++i) {
        std::vector<std::byte> b = Blob(i);
        Result<bool> put = s.Put("alpha", TestChunkId(i), b, HashBlob(b));
        if (!put.ok()) return put.status();
      }
      return s.Flush("alpha");
    };
  };
  return {
      [](PeerStore& s) { return s.PutKey("alpha", Bytes("wrapped key one")); },
      batch(0, 4),
      [](PeerStore& s) { return s.PutRoots("alpha", 1, Bytes(std::string(3000, 'r'))); },
      batch(4, 4),
      [](PeerStore& s) { return s.PutRoots("alpha", 2, Bytes(std::string(2000, 's'))); },
      [](PeerStore& s) { return s.PutKey("alpha", Bytes("wrapped key two, longer")); },
      [](PeerStore& s) {
        std::vector<ChunkId> ids = {TestChunkId(0), TestChunkId(1), TestChunkId(2)};
        return s.Release("alpha", ids).status();
      },
      batch(2, 1),  // chunk 2 stored again: kept
      [](PeerStore& s) {
        g_clock.Advance(std::chrono::hours(24 * 8));
        return s.Collect("alpha", 7 * 86400, 0.9, 30 * 86400).status();
      },
  };
}

// What the store holds for alpha, as one comparable string; chunks are
// read back and compared as they are listed.
std::string State(PeerStore& s) {
  // Not s.Owners(): an owner directory left empty by a cut is the same as none.
  std::string out;
  Result<std::vector<std::byte>> key = s.GetKey("alpha");
  out += "key " + (key.ok() ? ToHex(*key) : std::string("none")) + "\n";
  Result<Roots> roots = s.GetRoots("alpha");
  out += "roots " + (roots.ok() ? std::to_string(roots->generation) + " " + ToHex(HashBlob(roots->data))
                                : std::string("none")) + "\n";
  std::vector<ChunkId> ids;
  for (uint64_t i = 0; i < kChunks; ++i) ids.push_back(TestChunkId(i));
  Result<std::vector<bool>> has = s.Has("alpha", ids);
  if (!has.ok()) return out + "Has failed: " + has.status().ToString();
  for (uint64_t i = 0; i < kChunks; ++i) {
    if (!(*has)[i]) continue;
    Result<std::vector<std::byte>> got = s.Get("alpha", TestChunkId(i));
    out += "chunk " + std::to_string(i) +
           (got.ok() ? (*got == Blob(i) ? " ok" : " WRONG BYTES") : " " + got.status().ToString()) +
           "\n";
  }
  for (uint64_t i = 0; i < kChunks; ++i) {
    if ((*has)[i]) continue;  // released but readable until collected
    Result<std::vector<std::byte>> got = s.Get("alpha", TestChunkId(i));
    if (got.ok()) out += "released chunk " + std::to_string(i) + (*got == Blob(i) ? " ok" : " WRONG") + "\n";
  }
  Result<std::vector<RootsGeneration>> history = s.RootsHistory("alpha");
  if (history.ok()) {
    for (const RootsGeneration& g : *history) {
      Result<Roots> r = s.GetRootsGeneration("alpha", g.generation);
      out += "generation " + std::to_string(g.generation) + " " +
             (r.ok() ? ToHex(HashBlob(r->data)) : r.status().ToString()) + "\n";
    }
  }
  Result<OwnerUsage> u = s.Usage("alpha");
  if (u.ok())
    out += "usage " + std::to_string(u->chunks) + " " + std::to_string(u->chunk_bytes) + " " +
           std::to_string(u->record_bytes) + " released " + std::to_string(u->released_chunks) +
           " total " + std::to_string(s.TotalUsed()) + "\n";
  return out;
}

class CrashPeerStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string ref = tmp_ / "reference";
    g_clock.SetWall(kStart);
    auto open = [&] {
      auto s = PeerStore::Open(ref, kLimits, Env::Default(), g_clock);
      EXPECT_TRUE(s.ok()) << s.status().ToString();
      return s.ok() ? std::move(*s) : nullptr;
    };
    states_.push_back(State(*open()));
    for (const Op& op : Operations()) {
      {
        auto s = open();
        ASSERT_NE(s, nullptr);
        ASSERT_TRUE(op(*s).ok());
      }
      states_.push_back(State(*open()));  // as a restart sees it
    }
  }

  std::string root() const { return tmp_ / "state/held"; }
  void Reset() {
    std::filesystem::remove_all(tmp_ / "state");
    std::filesystem::create_directories(tmp_ / "state");
  }

  void Run() {
    acked_ = -1;
    g_clock.SetWall(kStart);
    auto s = PeerStore::Open(root(), kLimits, &env_, g_clock);
    if (!s.ok()) {
      status_ = s.status();
      return;
    }
    acked_ = 0;
    for (const Op& op : Operations()) {
      status_ = op(**s);
      if (!status_.ok()) return;
      ++acked_;
    }
  }

  void CheckReopened() {
    auto s = PeerStore::Open(root(), kLimits, Env::Default(), g_clock);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    const size_t done = static_cast<size_t>(std::max(acked_, 0));
    // Collect is not one atomic step (index, release log, history, packs):
    // cut anywhere, it loses nothing, and the next Collect finishes it.
    if (done + 1 == states_.size() - 1) {
      Result<CollectReport> again = (*s)->Collect("alpha", 7 * 86400, 0.9, 30 * 86400);
      ASSERT_TRUE(again.ok()) << again.status().ToString();
      const std::string finished = State(**s);
      EXPECT_EQ(finished, states_[done + 1]) << "a Collect cut short, then run again";
      return;
    }
    const std::string got = State(**s);
    const bool before = got == states_[done];
    const bool after = done + 1 < states_.size() && got == states_[done + 1];
    EXPECT_TRUE(before || after) << "after " << acked_ << " acknowledged operations the store "
                                 << "holds:\n" << got << "expected:\n" << states_[done]
                                 << "or:\n" << (done + 1 < states_.size() ? states_[done + 1] : "");
  }

  TempDir tmp_;
  FaultEnv env_;
  std::vector<std::string> states_;
  int acked_ = 0;
  Status status_;
};

TEST_F(CrashPeerStoreTest, PowerCutAtEverySyncPointKeepsEveryAcknowledgedOperation) {
  const uint64_t points = sparetime::testing::CrashAtEverySyncPoint(
      env_, [&] { Reset(); }, [&] { Run(); },
      [&](const CrashPoint& p) {
        if (p.k == p.total) {
          EXPECT_TRUE(status_.ok()) << status_.ToString();
        }
        CheckReopened();
      });
  EXPECT_GE(points, 20u);
}

TEST_F(CrashPeerStoreTest, EioAndEnospcAtEveryMutationSurfaceAndStayConsistent) {
  uint64_t surfaced = 0;
  const uint64_t mutations = sparetime::testing::FailEveryMutation(
      env_, [&] { Reset(); }, [&] { Run(); },
      [&](const CrashPoint& p) {
        if (!status_.ok()) {
          ++surfaced;
          EXPECT_EQ(status_.code(), sparetime::testing::CodeFor(p.error)) << status_.ToString();
        }
        CheckReopened();
      });
  EXPECT_GE(mutations, 20u);
  EXPECT_GT(surfaced, mutations / 2);
  std::cout << "peer store: " << mutations << " mutations, " << surfaced << " faults surfaced\n";
}

}  // namespace
}  // namespace sparetime::peerstore
