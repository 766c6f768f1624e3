// The test vectors in docs/protocol.md, checked three ways:
//  1. the state machines and frame sealer, fed the documented fixed keys,
//     produce exactly the documented messages, keys and first frame;
//  2. an independent recomputation from raw libsodium calls, following the
//     document's steps, arrives at the same values (so the document, not
//     just the code, is right);
//  3. a real Session pair over a socketpair, with the fixed ephemeral keys
//     injected through SessionOptions, puts exactly those bytes on the wire.
// After a deliberate protocol change, SPARETIME_PRINT_VECTORS=1 prints the
// block to paste into the document.
#include <gtest/gtest.h>
#include <sodium.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "sparetime/base/bytes.h"
#include "sparetime/transport/frame.h"
#include "sparetime/transport/handshake.h"
#include "sparetime/transport/messages.h"
#include "sparetime/transport/session.h"
#include "transport/relay.h"

namespace sparetime::transport {
namespace {

using Bytes = std::vector<std::byte>;
using Vectors = std::vector<std::pair<std::string, Bytes>>;

Bytes Counting(uint8_t start, size_t n = 32) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = std::byte(start + i);
  return b;
}
template <size_t N>
std::span<const std::byte, N> Fixed(const Bytes& b) {
  return std::span<const std::byte, N>(b.data(), N);
}
Bytes Of(std::span<const std::byte> s) { return {s.begin(), s.end()}; }
Bytes Of(const SecretBuffer& s) { return Of(s.span()); }
const unsigned char* U(const Bytes& b) { return reinterpret_cast<const unsigned char*>(b.data()); }
unsigned char* U(Bytes& b) { return reinterpret_cast<unsigned char*>(b.data()); }

const Bytes kInitiatorSeed = Counting(0x00);
const Bytes kResponderSeed = Counting(0x20);
const Bytes kInitiatorEphemeral = Counting(0x40);
const Bytes kResponderEphemeral = Counting(0x60);

Bytes FirstMessage() { return *EncodeMessage({1, GetStatsRequest{}}); }

// (1) What the implementation produces from the fixed inputs.
Vectors FromImplementation() {
  Identity init = Identity::FromSeed(Fixed<32>(kInitiatorSeed));
  Identity resp = Identity::FromSeed(Fixed<32>(kResponderSeed));
  EphemeralKey ei = EphemeralKey::FromSecret(Fixed<32>(kInitiatorEphemeral));
  EphemeralKey er = EphemeralKey::FromSecret(Fixed<32>(kResponderEphemeral));
  Vectors v = {{"initiator_seed", kInitiatorSeed},
               {"responder_seed", kResponderSeed},
               {"initiator_ephemeral_secret", kInitiatorEphemeral},
               {"responder_ephemeral_secret", kResponderEphemeral},
               {"initiator_public", Of(init.public_key().bytes)},
               {"responder_public", Of(resp.public_key().bytes)},
               {"initiator_ephemeral_public", Of(ei.public_key)},
               {"responder_ephemeral_public", Of(er.public_key)}};
  InitiatorHandshake ih(init, resp.public_key(), std::move(ei));
  ResponderHandshake rh(resp, std::move(er));
  Bytes msg1 = ih.Hello();
  Bytes msg2 = *rh.OnHello(msg1);
  Bytes msg3 = *ih.OnResponse(msg2);
  Bytes msg4 = *rh.OnFinish(msg3, [](const PublicKey&) { return Status::Ok(); });
  SessionKeys keys = *ih.OnAccept(msg4);
  FrameSealer sealer(std::move(keys.send_key));
  Bytes frame = *sealer.Seal(FrameKind::kMessage, FirstMessage());
  v.insert(v.end(), {{"msg1", msg1},
                     {"msg2", msg2},
                     {"msg3", msg3},
                     {"msg4", msg4},
                     {"h4", Of(keys.transcript_hash)},
                     {"key_r2i", Of(keys.recv_key)},
                     {"first_message", FirstMessage()},
                     {"first_frame", frame}});
  return v;
}

Bytes Hash(std::initializer_list<Bytes> parts, const Bytes* key = nullptr) {
  crypto_generichash_state st;
  crypto_generichash_init(&st, key ? U(*key) : nullptr, key ? key->size() : 0, 32);
  for (const Bytes& p : parts) crypto_generichash_update(&st, U(p), p.size());
  Bytes out(32);
  crypto_generichash_final(&st, U(out), 32);
  return out;
}
Bytes Kdf(const Bytes& key, uint64_t id, const char* ctx) {
  Bytes out(32);
  crypto_kdf_derive_from_key(U(out), 32, id, ctx, U(key));
  return out;
}
Bytes Aead(const Bytes& key, const Bytes& nonce, const Bytes& pt, const Bytes& ad) {
  Bytes out(pt.size() + 16);
  crypto_aead_xchacha20poly1305_ietf_encrypt(U(out), nullptr, U(pt), pt.size(), U(ad), ad.size(),
                                             nullptr, U(nonce), U(key));
  return out;
}
Bytes Cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}
Bytes Text(std::string_view s) { return Of(AsBytes(s)); }
Bytes Sign(const Bytes& seed, const Bytes& msg) {
  Bytes pk(32), sk(64), sig(64);
  crypto_sign_seed_keypair(U(pk), U(sk), U(seed));
  crypto_sign_detached(U(sig), nullptr, U(msg), msg.size(), U(sk));
  return sig;
}

// (2) The document's steps, redone from libsodium alone, starting from the
// documented inputs and messages. Returns every value it derives.
Vectors Independently(std::map<std::string, Bytes>& doc) {
  Vectors v;
  const Bytes zero24(24);
  Bytes ee(32), ee2(32);
  EXPECT_EQ(crypto_scalarmult(U(ee), U(doc["initiator_ephemeral_secret"]),
                              U(doc["responder_ephemeral_public"])), 0);
  EXPECT_EQ(crypto_scalarmult(U(ee2), U(doc["responder_ephemeral_secret"]),
                              U(doc["initiator_ephemeral_public"])), 0);
  EXPECT_EQ(ee, ee2);
  Bytes h0 = Hash({Text("sparetime/1")});
  Bytes msg1 = Cat({{std::byte{1}, std::byte{1}, std::byte{11}}, Text("sparetime/1"),
                    doc["initiator_ephemeral_public"]});
  Bytes h1 = Hash({h0, msg1});
  Bytes head2 = Cat({{std::byte{1}, std::byte{2}}, doc["responder_ephemeral_public"]});
  Bytes h2 = Hash({h1, head2});
  Bytes ck = Hash({ee}, &h2);
  Bytes k2 = Kdf(ck, 1, "stp1hand"), k3 = Kdf(ck, 2, "stp1hand"), k4 = Kdf(ck, 3, "stp1hand");
  Bytes sig_r = Sign(doc["responder_seed"], Cat({Text("sparetime/1 responder signature"), h2}));
  Bytes c2 = Aead(k2, zero24, Cat({doc["responder_public"], sig_r}), h2);
  Bytes msg2 = Cat({head2, c2});
  Bytes h3 = Hash({h2, c2});
  Bytes sig_i = Sign(doc["initiator_seed"], Cat({Text("sparetime/1 initiator signature"), h3}));
  Bytes msg3 = Cat({{std::byte{1}, std::byte{3}}, Aead(k3, zero24, Cat({doc["initiator_public"], sig_i}), h3)});
  Bytes h4 = Hash({h3, msg3});
  Bytes msg4 = Cat({{std::byte{1}, std::byte{4}}, Aead(k4, zero24, {}, h4)});
  Bytes ms = Hash({h4}, &ck);
  Bytes i2r = Kdf(ms, 1, "stp1sess"), r2i = Kdf(ms, 2, "stp1sess");
  const Bytes& m = doc["first_message"];
  Bytes header(5);
  PutLe32(header.data(), static_cast<uint32_t>(m.size() + 16));
  Bytes frame = Cat({header, Aead(i2r, zero24, m, header)});
  v = {{"h0", h0}, {"h1", h1}, {"h2", h2}, {"ee", ee},     {"ck", ck},       {"k2", k2},
       {"k3", k3}, {"k4", k4}, {"msg1", msg1}, {"msg2", msg2}, {"h3", h3}, {"msg3", msg3},
       {"h4", h4}, {"msg4", msg4}, {"ms", ms}, {"key_i2r", i2r}, {"key_r2i", r2i},
       {"first_frame", frame}};
  return v;
}

std::map<std::string, Bytes> LoadDocumentVectors() {
  std::ifstream in(std::string(SPARETIME_SOURCE_DIR) + "/docs/protocol.md");
  std::map<std::string, Bytes> out;
  std::string line, name, hex;
  bool inside = false;
  auto flush = [&] {
    if (!name.empty()) out[name] = FromHex(hex).value_or(Bytes{std::byte{0xee}});
    name.clear();
    hex.clear();
  };
  while (std::getline(in, line)) {
    if (line.find("<!-- test-vectors:begin -->") != std::string::npos) inside = true;
    if (line.find("<!-- test-vectors:end -->") != std::string::npos) inside = false;
    if (!inside || line.empty() || line[0] == '`' || line[0] == '<') continue;
    std::istringstream words(line);
    std::string first, eq, value;
    words >> first >> eq >> value;
    if (eq == "=") {
      flush();
      name = first;
      hex = value;
    } else {
      hex += first;  // a continuation line
    }
  }
  flush();
  return out;
}

std::string Format(const Vectors& v) {
  std::ostringstream out;
  for (const auto& [name, bytes] : v) {
    std::string hex = ToHex(bytes);
    out << name << std::string(name.size() < 27 ? 27 - name.size() : 1, ' ') << "= "
        << hex.substr(0, 64) << "\n";
    for (size_t i = 64; i < hex.size(); i += 64) out << std::string(29, ' ') << hex.substr(i, 64) << "\n";
  }
  return out.str();
}

TEST(ProtocolVectorsTest, DocumentMatchesImplementationAndIndependentDerivation) {
  Vectors impl = FromImplementation();
  std::map<std::string, Bytes> doc = LoadDocumentVectors();
  if (std::getenv("SPARETIME_PRINT_VECTORS") != nullptr) {
    for (auto& [k, b] : impl) doc[k] = b;
    Vectors all = impl;
    for (auto& entry : Independently(doc))
      if (std::none_of(all.begin(), all.end(), [&](auto& e) { return e.first == entry.first; }))
        all.push_back(entry);
    std::cout << Format(all);
  }
  ASSERT_FALSE(doc.empty()) << "no test vectors found in docs/protocol.md";
  for (const auto& [name, bytes] : impl) {
    ASSERT_TRUE(doc.count(name)) << name << " is missing from docs/protocol.md";
    EXPECT_EQ(ToHex(doc[name]), ToHex(bytes)) << "implementation differs from the document: " << name;
  }
  for (const auto& [name, bytes] : Independently(doc)) {
    ASSERT_TRUE(doc.count(name)) << name << " is missing from docs/protocol.md";
    EXPECT_EQ(ToHex(doc[name]), ToHex(bytes)) << "document's own steps give another " << name;
  }
}

TEST(ProtocolVectorsTest, SessionsPutExactlyTheseBytesOnTheWire) {
  std::map<std::string, Bytes> doc = LoadDocumentVectors();
  std::mutex mu;
  std::vector<Bytes> up, down;  // units seen by the relay, per direction
  auto record = [&](std::vector<Bytes>& log) {
    return [&mu, &log](size_t, Bytes& unit, const testing::Relay::Send& send) {
      {
        std::lock_guard lock(mu);
        log.push_back(unit);
      }
      send(unit);
      return true;
    };
  };
  testing::Relay relay(record(up), record(down));
  Identity init = Identity::FromSeed(Fixed<32>(kInitiatorSeed));
  Identity resp = Identity::FromSeed(Fixed<32>(kResponderSeed));
  SessionOptions io, ro;
  io.ephemeral_keys = [] { return EphemeralKey::FromSecret(Fixed<32>(kInitiatorEphemeral)); };
  ro.ephemeral_keys = [] { return EphemeralKey::FromSecret(Fixed<32>(kResponderEphemeral)); };
  std::optional<Result<Session>> server;
  std::thread t([&] {
    server.emplace(Session::Accept(relay.TakeResponderEnd(), resp,
                                   [](const PublicKey&) { return Status::Ok(); }, ro));
  });
  auto client = Session::Connect(relay.TakeInitiatorEnd(), init, resp.public_key(), io);
  t.join();
  ASSERT_TRUE(client.ok()) << client.error().ToString();
  ASSERT_TRUE(server->ok()) << server->error().ToString();
  ASSERT_TRUE(client->Send(FirstMessage()).ok());
  ASSERT_TRUE((*server)->Receive().ok());
  std::lock_guard lock(mu);
  auto prefixed = [](const Bytes& m) {
    return Cat({{std::byte(m.size() & 0xff), std::byte(m.size() >> 8)}, m});
  };
  ASSERT_EQ(up.size(), 3u);
  ASSERT_EQ(down.size(), 2u);
  EXPECT_EQ(ToHex(up[0]), ToHex(prefixed(doc["msg1"])));
  EXPECT_EQ(ToHex(down[0]), ToHex(prefixed(doc["msg2"])));
  EXPECT_EQ(ToHex(up[1]), ToHex(prefixed(doc["msg3"])));
  EXPECT_EQ(ToHex(down[1]), ToHex(prefixed(doc["msg4"])));
  EXPECT_EQ(ToHex(up[2]), ToHex(doc["first_frame"]));
}

}  // namespace
}  // namespace sparetime::transport
