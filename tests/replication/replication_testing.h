// Real peers for the replication tests: a PeerServer on 127.0.0.1 over its
// own PeerStore (64 MiB, 32 MiB per owner), accepting only the owner's key
// (as agent "owner"). A restarted peer keeps its port.
#ifndef SPARETIME_TESTS_REPLICATION_REPLICATION_TESTING_H_
#define SPARETIME_TESTS_REPLICATION_REPLICATION_TESTING_H_

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "sparetime/peer/peer_server.h"
#include "sparetime/peerstore/peer_store.h"
#include "sparetime/replication/peer_set.h"
#include "sparetime/transport/identity.h"

namespace sparetime::testing {

struct TestPeer {
  transport::Identity id = transport::Identity::Generate();
  std::string name;
  std::unique_ptr<peerstore::PeerStore> store;
  std::unique_ptr<peer::PeerServer> server;
  uint16_t port = 0;  // 0 the first time; the same port on a restart

  // As the directory would list it: 1 GiB free, no site.
  replication::PeerSetPeer Endpoint() const {
    return {{name, "127.0.0.1", port, id.public_key()}, "", 1 << 30};
  }
};

// (Re)starts `peer`'s server over its store.
inline void StartTestPeer(TestPeer& peer, const transport::Identity& owner) {
  peer::PeerServerOptions o;
  o.listen_address = "127.0.0.1";
  o.port = peer.port;
  o.log = [](const std::string&) {};
  auto lookup = [&owner](const transport::PublicKey& key) -> Result<std::string> {
    if (key == owner.public_key()) return std::string("owner");
    return Status(ErrorCode::kPermissionDenied, "unknown key");
  };
  auto server = peer::PeerServer::Start(peer.id, *peer.store, lookup, o);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  peer.server = std::move(*server);
  peer.port = peer.server->port();
}

// A new peer `name` with its store in dir/held-<name>, started, appended to `peers`.
inline void AddTestPeer(const std::string& dir, const std::string& name,
                        const transport::Identity& owner,
                        std::vector<std::unique_ptr<TestPeer>>* peers) {
  auto p = std::make_unique<TestPeer>();
  p->name = name;
  auto store = peerstore::PeerStore::Open(dir + "/held-" + name, {64 << 20, 32 << 20});
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  p->store = std::move(*store);
  ASSERT_NO_FATAL_FAILURE(StartTestPeer(*p, owner));
  peers->push_back(std::move(p));
}

}  // namespace sparetime::testing

#endif  // SPARETIME_TESTS_REPLICATION_REPLICATION_TESTING_H_
