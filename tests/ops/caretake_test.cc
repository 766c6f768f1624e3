// ops::Caretake against three real PeerServers (real PeerStores on disk,
// real sessions on 127.0.0.1) with the caretaker rule as the daemon wires
// it: the fault rows of issue 21 part 3. Six chunks of alpha, each on one
// peer only (R = 2): the caretaker copies each once, sealed, to the peer
// placement picks; a caretaker stopped after two copies resumes and makes
// exactly the four left; a peer over alpha's quota is skipped and the next
// candidate used; two heals at once (two believers) leave every chunk at
// exactly R, the puts being idempotent; an agent the rule does not name is
// refused by Caretake and by the peers.
#include "sparetime/ops/caretaker.h"

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <thread>

#include "sparetime/peer/peer_client.h"
#include "sparetime/peer/peer_server.h"
#include "sparetime/peerstore/peer_store.h"
#include "testutil/testutil.h"

namespace sparetime::ops {
namespace {

namespace dir = sparetime::directory;
using transport::Identity;

constexpr int kPeers = 3;
const char* const kNames[kPeers] = {"beta", "gamma", "delta"};
constexpr size_t kBlob = 1000;

class StopAfter : public PauseGate {
 public:
  explicit StopAfter(int n) : left_(n) {}
  Status WaitWhilePaused(uint64_t) override {
    if (left_-- <= 0) return Status(ErrorCode::kCancelled, "busy");
    return Status::Ok();
  }

 private:
  int left_;
};

class CaretakeTest : public ::testing::Test {
 protected:
  void Start(uint64_t quota_of_first = 0, bool anyone_cares = false) {
    const auto now = std::chrono::system_clock::now();
    dir::AgentRecord alpha;
    alpha.name = "alpha";
    alpha.last_seen = now - std::chrono::hours(48);
    view_.agents.push_back(alpha);
    for (int i = 0; i < kPeers; ++i) {
      auto store = peerstore::PeerStore::Open(dir_ / kNames[i],
                                              {64 << 20, i == 0 && quota_of_first ? quota_of_first : 0});
      ASSERT_TRUE(store.ok());
      stores_[i] = std::move(*store);
      peer::PeerServerOptions o;
      o.listen_address = "127.0.0.1";
      o.port = 0;
      o.log = [](const std::string&) {};
      o.may_care_for = [this, anyone_cares](const std::string& caller, const std::string& owner) {
        if (anyone_cares && caller != "alpha") return Status::Ok();
        return MayCareFor(view_, caller, owner, std::chrono::system_clock::now());
      };
      auto lookup = [this](const transport::PublicKey& key) -> Result<std::string> {
        if (key == alpha_.public_key()) return std::string("alpha");
        for (int j = 0; j < kPeers; ++j) {
          if (key == ids_[j].public_key()) return std::string(kNames[j]);
        }
        return Status(ErrorCode::kPermissionDenied, "unknown key");
      };
      auto server = peer::PeerServer::Start(ids_[i], *stores_[i], lookup, o);
      ASSERT_TRUE(server.ok());
      servers_[i] = std::move(*server);
      dir::AgentRecord a;
      a.name = kNames[i];
      a.address = "127.0.0.1";
      a.port = servers_[i]->port();
      std::memcpy(a.public_key.data(), ids_[i].public_key().bytes.data(), a.public_key.size());
      a.free = 1 << 30;
      a.last_seen = now;
      view_.agents.push_back(a);
    }
    caretaker_ = DecideCaretaker(view_, "alpha", now).caretaker;
    ASSERT_FALSE(caretaker_.empty());
    // Six chunks, chunk k on peer k % 3 only (what is left after a wipe).
    for (int k = 0; k < 6; ++k) {
      std::vector<std::byte> blob = testing::RandomBytes(kBlob, 50 + k);
      ASSERT_TRUE(stores_[k % kPeers]->Put("alpha", testing::TestChunkId(k), blob, HashBlob(blob)).ok());
    }
    for (auto& s : stores_) ASSERT_TRUE(s->Flush("alpha").ok());
  }
  int Index(const std::string& name) const {
    for (int i = 0; i < kPeers; ++i)
      if (name == kNames[i]) return i;
    return -1;
  }
  Result<CaretakeReport> Run(const std::string& as, PauseGate* gate = nullptr) {
    config::AgentConfig config;
    config.name = as;
    config.peer_timeout = std::chrono::seconds(5);
    CaretakeRequest r;
    r.config = &config;
    r.view = &view_;
    r.identity = &ids_[Index(as)];
    r.owner = "alpha";
    r.now = std::chrono::system_clock::now();
    r.gate = gate;
    return Caretake(r);
  }
  // Holders of each of the six chunks, and every copy byte-equal.
  std::vector<int> Holders() {
    std::vector<int> out;
    for (int k = 0; k < 6; ++k) {
      int n = 0;
      for (auto& s : stores_) {
        Result<std::vector<std::byte>> blob = s->Get("alpha", testing::TestChunkId(k));
        if (!blob.ok()) continue;
        EXPECT_EQ(*blob, testing::RandomBytes(kBlob, 50 + k));
        ++n;
      }
      out.push_back(n);
    }
    return out;
  }

  testing::TempDir dir_;
  Identity alpha_ = Identity::Generate();
  Identity ids_[kPeers] = {Identity::Generate(), Identity::Generate(), Identity::Generate()};
  std::unique_ptr<peerstore::PeerStore> stores_[kPeers];
  std::unique_ptr<peer::PeerServer> servers_[kPeers];
  dir::DirectoryView view_;
  std::string caretaker_;
  const std::vector<int> kTwice = std::vector<int>(6, 2);
};

TEST_F(CaretakeTest, AStoppedHealResumesAndCopiesOnlyWhatIsLeft) {
  ASSERT_NO_FATAL_FAILURE(Start());
  StopAfter two(2);
  Result<CaretakeReport> first = Run(caretaker_, &two);
  EXPECT_EQ(first.status().code(), ErrorCode::kCancelled);
  Result<CaretakeReport> second = Run(caretaker_);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->chunks, 6u);
  EXPECT_EQ(second->short_before, 4u);
  EXPECT_EQ(second->copied, 4u);
  EXPECT_EQ(second->bytes, 4 * kBlob);
  EXPECT_EQ(second->still_short, 0u);
  EXPECT_EQ(Holders(), kTwice);
  // Healed: a third run copies nothing.
  Result<CaretakeReport> third = Run(caretaker_);
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(third->short_before, 0u);
  EXPECT_EQ(third->copied, 0u);
}

TEST_F(CaretakeTest, APeerOverTheOwnersQuotaIsSkipped) {
  // beta already holds 2 of alpha's blobs and may hold no more.
  ASSERT_NO_FATAL_FAILURE(Start(/*quota_of_first=*/2 * kBlob + 100));
  Result<CaretakeReport> r = Run(caretaker_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->over_quota, 1u);  // refused once, then skipped for the rest of the run
  EXPECT_EQ(r->copied, 6u);      // the next candidate took beta's turn
  EXPECT_EQ(r->still_short, 0u);
  EXPECT_EQ(Holders(), kTwice);
  EXPECT_EQ(stores_[0]->Usage("alpha")->chunks, 2u);
}

TEST_F(CaretakeTest, TwoRunsAtOnceLeaveExactlyRReplicas) {
  // Two believers (a caretaker whose previous run still goes on, or two
  // peers whose views disagree) copy the same chunks to the same targets:
  // the puts are idempotent.
  ASSERT_NO_FATAL_FAILURE(Start());
  Result<CaretakeReport> a = Status(ErrorCode::kInternal, "not run");
  Result<CaretakeReport> b = Status(ErrorCode::kInternal, "not run");
  std::thread t1([&] { a = Run(caretaker_); });
  std::thread t2([&] { b = Run(caretaker_); });
  t1.join();
  t2.join();
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(a->still_short + b->still_short, 0u);
  EXPECT_GE(a->copied + b->copied, 6u);
  EXPECT_EQ(Holders(), kTwice);
  uint64_t total = 0;
  for (auto& st : stores_) total += st->Usage("alpha")->chunks;
  EXPECT_EQ(total, 12u);
}

TEST_F(CaretakeTest, AnAgentTheRuleDoesNotNameIsRefused) {
  ASSERT_NO_FATAL_FAILURE(Start());
  const std::string other = caretaker_ == "beta" ? "gamma" : "beta";
  EXPECT_EQ(Run(other).status().code(), ErrorCode::kFailedPrecondition);
  peer::PeerEndpoint e{"delta", "127.0.0.1", servers_[2]->port(), ids_[2].public_key()};
  auto c = peer::PeerClient::Connect(e, ids_[Index(other)]);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*c)->ListChunks("alpha").status().code(), ErrorCode::kPermissionDenied);
  EXPECT_EQ((*c)->CaretakerPut("alpha", {{testing::TestChunkId(9), testing::RandomBytes(10, 9)}})
                .status()
                .code(),
            ErrorCode::kPermissionDenied);
  EXPECT_EQ(Holders(), std::vector<int>(6, 1));
}

}  // namespace
}  // namespace sparetime::ops
