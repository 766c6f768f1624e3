// Key file version 2 (imaging/key_file.h): the documented vectors
// (docs/formats.md "Key file, version 2"), slots, escrow, migration from
// version 1, and every bad input the issue lists for them.
#include "sparetime/imaging/key_file.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <string>

#include "imaging/keys_testing.h"
#include "sparetime/base/bytes.h"

namespace sparetime {
namespace {

using testing::Hex;
using testing::VectorMaster;
using testing::kVectorKeyFile;
using testing::Secret;

// Escrow secret key 0x40..0x5f (the vector's).
SecretBuffer VectorEscrowSecret() {
  SecretBuffer s(kEscrowKeyBytes);
  for (size_t i = 0; i < s.size(); ++i) s.data()[i] = std::byte(0x40 + i);
  return s;
}

// The version-2 form of the version-1 vector: slot 1, label "init", created
// 1700000000, the same wrapped bytes; no escrow.
constexpr std::string_view kVectorKeyFileV2 = R"({
  "version": 2,
  "key_id": "9743cfa5664f69d202ec2f77d63250ee",
  "slots": [
    {
      "id": 1,
      "label": "init",
      "created": 1700000000,
      "kdf": "argon2id13",
      "opslimit": 1,
      "memlimit": 8192,
      "salt": "606162636465666768696a6b6c6d6e6f",
      "nonce": "707172737475767778797a7b7c7d7e7f8081828384858687",
      "ciphertext": "e7d47a3ec58b9fc25fb2b3ae75c265c003256640f6f7b3d57fd6f325f2212502bfe4ade3fcca7f0d09cf99012c3c8899"
    }
  ],
  "escrow": null
}
)";

class KeyFileTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(InitCrypto().ok()); }
  KdfLimits fast_ = KdfLimits::FastForTests();
};

TEST_F(KeyFileTest, KeyIdVector) {
  EXPECT_EQ(KeyIdOf(VectorMaster()), "9743cfa5664f69d202ec2f77d63250ee");
}

TEST_F(KeyFileTest, EscrowPublicKeyVector) {
  auto pk = EscrowPublicKeyOf(VectorEscrowSecret());
  EXPECT_EQ(ToHex(pk), "79a631eede1bf9c98f12032cdeadd0e7a079398fc786b88cc846ec89af85a51a");
}

// A seal made by libsodium's crypto_box_seal (random ephemeral key, so no
// vector can be re-made; this one is fixed) of master 0x00..0x1f to the
// escrow key 0x40..0x5f; opened independently by
// scripts/crosscheck-key-vectors.py (X25519 from Python's cryptography,
// HSalsa20/XSalsa20 by hand, its Poly1305).
constexpr char kVectorSeal[] =
    "3570c9b48cc786cc54b51ea1d7bd0c92926be81752c559b5a26a96d6ff08675f6723011905fc1254e5f26cec98"
    "6ccbf04376f3c7474ea6d988dcb6f3cd74ea6fe230409066ac8dab19113f363c63f3b2";

TEST_F(KeyFileTest, EscrowSealVector) {
  std::string text(kVectorKeyFileV2);
  text.replace(text.find("\"escrow\": null"), 14,
               std::string("\"escrow\": {\n    \"public_key\": \"") +
                   "79a631eede1bf9c98f12032cdeadd0e7a079398fc786b88cc846ec89af85a51a" +
                   "\",\n    \"sealed\": \"" + kVectorSeal + "\"\n  }");
  Result<KeyFile> f = KeyFile::FromJson(text);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->ToJson(), text);  // the exact serialisation of a sealed file
  Result<SecretBuffer> master = OpenEscrow(*f, VectorEscrowSecret());
  ASSERT_TRUE(master.ok()) << master.status().ToString();
  EXPECT_EQ(Hex(*master), Hex(VectorMaster()));
}

TEST_F(KeyFileTest, VersionOneReadsAsOneSlotAndMigratesByteForByte) {
  Result<KeyFile> f = KeyFile::FromJson(kVectorKeyFile);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_TRUE(f->from_version_1);
  ASSERT_EQ(f->slots.size(), 1u);
  EXPECT_EQ(f->slots[0].id, 1u);
  EXPECT_TRUE(f->key_id.empty());
  Result<UnlockedKey> k = UnlockKeyFile(*f, Secret(testing::kVectorPassphrase), nullptr);
  ASSERT_TRUE(k.ok()) << k.status().ToString();
  EXPECT_EQ(Hex(k->master), Hex(VectorMaster()));
  EXPECT_EQ(k->slot, 1u);
  // What Repository::Open writes when it migrates (plus label/created).
  f->key_id = KeyIdOf(k->master);
  f->slots[0].label = "init";
  f->slots[0].created = 1700000000;
  f->from_version_1 = false;
  EXPECT_EQ(f->ToJson(), kVectorKeyFileV2);
  Result<KeyFile> again = KeyFile::FromJson(kVectorKeyFileV2);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_FALSE(again->from_version_1);
  EXPECT_EQ(again->ToJson(), kVectorKeyFileV2);
}

TEST_F(KeyFileTest, EverySlotOpensWithItsOwnPassphraseAndCost) {
  SecretBuffer master = NewMasterKey();
  Result<KeyFile> f = NewKeyFile(master, Secret("first"), fast_, "init", 1);
  ASSERT_TRUE(f.ok());
  Result<uint32_t> id2 = AddKeySlot(*f, master, Secret("second"), {2, 16384}, "laptop", 2);
  ASSERT_TRUE(id2.ok());
  EXPECT_EQ(*id2, 2u);
  Result<KeyFile> parsed = KeyFile::FromJson(f->ToJson());
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  ASSERT_EQ(parsed->slots.size(), 2u);
  EXPECT_EQ(parsed->slots[1].wrapped.opslimit, 2u);
  EXPECT_EQ(parsed->slots[1].wrapped.memlimit, 16384u);
  EXPECT_EQ(parsed->slots[1].label, "laptop");
  auto a = UnlockKeyFile(*parsed, Secret("first"), nullptr);
  auto b = UnlockKeyFile(*parsed, Secret("second"), nullptr);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->slot, 1u);
  EXPECT_EQ(b->slot, 2u);
  EXPECT_EQ(Hex(a->master), Hex(master));
  EXPECT_EQ(Hex(b->master), Hex(master));
  auto wrong = UnlockKeyFile(*parsed, Secret("third"), nullptr);
  EXPECT_EQ(wrong.status().code(), ErrorCode::kAuthFailed);
}

TEST_F(KeyFileTest, RemovingTheLastSlotIsRefusedWithoutEscrow) {
  SecretBuffer master = NewMasterKey();
  Result<KeyFile> f = NewKeyFile(master, Secret("only"), fast_, "init", 1);
  ASSERT_TRUE(f.ok());
  Status st = RemoveKeySlot(*f, 1);
  EXPECT_EQ(st.code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(st.message().find("last way into these backups"), std::string::npos) << st.message();
  EXPECT_EQ(f->slots.size(), 1u);
  EXPECT_EQ(RemoveKeySlot(*f, 7).code(), ErrorCode::kNotFound);
  // With an escrow seal the last slot may go; the file still opens with escrow.
  EscrowKeyPair admin = NewEscrowKeyPair();
  ASSERT_TRUE(SealToEscrow(*f, master, admin.public_key).ok());
  ASSERT_TRUE(RemoveKeySlot(*f, 1).ok());
  Result<KeyFile> parsed = KeyFile::FromJson(f->ToJson());
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->slots.size(), 0u);
  Result<SecretBuffer> opened = OpenEscrow(*parsed, admin.secret_key);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ(Hex(*opened), Hex(master));
}

TEST_F(KeyFileTest, AtMostEightSlots) {
  SecretBuffer master = NewMasterKey();
  Result<KeyFile> f = NewKeyFile(master, Secret("p0"), fast_, "", 1);
  ASSERT_TRUE(f.ok());
  for (int i = 1; i < 8; ++i) {
    ASSERT_TRUE(AddKeySlot(*f, master, Secret("p" + std::to_string(i)), fast_, "", 1).ok());
  }
  auto ninth = AddKeySlot(*f, master, Secret("p8"), fast_, "", 1);
  EXPECT_EQ(ninth.status().code(), ErrorCode::kNoSpace);
  EXPECT_LE(f->ToJson().size(), 4096u);  // what peers keep
}

TEST_F(KeyFileTest, WrongEscrowKeyIsRefusedNamingBothPublicKeys) {
  SecretBuffer master = NewMasterKey();
  Result<KeyFile> f = NewKeyFile(master, Secret("p"), fast_, "", 1);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(OpenEscrow(*f, NewEscrowKeyPair().secret_key).status().code(), ErrorCode::kNotFound);
  EscrowKeyPair ours = NewEscrowKeyPair();
  EscrowKeyPair other_domain = NewEscrowKeyPair();
  ASSERT_TRUE(SealToEscrow(*f, master, ours.public_key).ok());
  Result<SecretBuffer> wrong = OpenEscrow(*f, other_domain.secret_key);
  EXPECT_EQ(wrong.status().code(), ErrorCode::kAuthFailed);
  EXPECT_NE(wrong.status().message().find(ToHex(ours.public_key)), std::string::npos);
  EXPECT_NE(wrong.status().message().find(ToHex(other_domain.public_key)), std::string::npos);
  Result<SecretBuffer> right = OpenEscrow(*f, ours.secret_key);
  ASSERT_TRUE(right.ok());
  EXPECT_EQ(Hex(*right), Hex(master));
}

TEST_F(KeyFileTest, ASealOrSlotOfAnotherKeyIsRefused) {
  SecretBuffer master = NewMasterKey(), other = NewMasterKey();
  EscrowKeyPair admin = NewEscrowKeyPair();
  Result<KeyFile> f = NewKeyFile(master, Secret("p"), fast_, "", 1);
  Result<KeyFile> g = NewKeyFile(other, Secret("q"), fast_, "", 1);
  ASSERT_TRUE(f.ok() && g.ok());
  ASSERT_TRUE(SealToEscrow(*g, other, admin.public_key).ok());
  // Someone who can edit the file swaps in another key's slot and seal.
  KeyFile forged = *f;
  forged.slots.push_back(g->slots[0]);
  forged.slots.back().id = 2;
  forged.escrow = g->escrow;
  auto via_slot = UnlockKeyFile(forged, Secret("q"), nullptr);
  EXPECT_EQ(via_slot.status().code(), ErrorCode::kCorruption);
  EXPECT_NE(via_slot.status().message().find("altered"), std::string::npos);
  EXPECT_EQ(OpenEscrow(forged, admin.secret_key).status().code(), ErrorCode::kCorruption);
  // Adding a slot for the wrong master key is refused too.
  EXPECT_EQ(AddKeySlot(*f, other, Secret("x"), fast_, "", 1).status().code(),
            ErrorCode::kCorruption);
}

TEST_F(KeyFileTest, MalformedVersion2FilesNameTheField) {
  struct Case {
    std::string from, to, field;
  } cases[] = {
      {"\"version\": 2", "\"version\": 3", "version"},
      {"9743cfa5664f69d202ec2f77d63250ee", "9743", "key_id"},
      {"\"id\": 1", "\"id\": 0", "id"},
      {"\"label\": \"init\"", "\"label\": 5", "label"},
      {"\"created\": 1700000000", "\"created\": \"x\"", "created"},
      {"\"opslimit\": 1", "\"opslimit\": 99", "opslimit"},
      {"\"escrow\": null", "\"escrow\": 5", "escrow"},
      {"\"escrow\": null", "\"escrow\": {\"public_key\": \"00\", \"sealed\": \"00\"}", "public_key"},
  };
  for (const Case& c : cases) {
    std::string text(kVectorKeyFileV2);
    size_t at = text.find(c.from);
    ASSERT_NE(at, std::string::npos) << c.from;
    text.replace(at, c.from.size(), c.to);
    Result<KeyFile> f = KeyFile::FromJson(text);
    ASSERT_FALSE(f.ok()) << c.to;
    EXPECT_EQ(f.status().code(), ErrorCode::kCorruption) << c.to;
    EXPECT_NE(f.status().message().find(c.field), std::string::npos) << f.status().message();
  }
  std::string no_way_in(kVectorKeyFileV2);
  size_t start = no_way_in.find("[\n"), end = no_way_in.find("  ],");
  no_way_in.replace(start, end + 3 - start, "[]");
  Result<KeyFile> f = KeyFile::FromJson(no_way_in);
  EXPECT_EQ(f.status().code(), ErrorCode::kCorruption);
  EXPECT_NE(f.status().message().find("neither"), std::string::npos) << f.status().message();
}

}  // namespace
}  // namespace sparetime
