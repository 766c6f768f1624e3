// Identity keys: base64 form as published in LDAP, the key file and its
// checks, signatures (RFC 8032 test 1 as a known answer).
#include "sparetime/transport/identity.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "sparetime/base/bytes.h"
#include "sparetime/base/fd.h"
#include "testutil/testutil.h"

namespace sparetime::transport {
namespace {

using testing::ReadFileOrDie;
using testing::TempDir;
using testing::WriteFileOrDie;

// RFC 8032 section 7.1, TEST 1. Its public key is the one in conf/ldap/example-dit.ldif.
constexpr char kRfcSeed[] = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
constexpr char kRfcPublicBase64[] = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
constexpr char kRfcEmptySignature[] =
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b4"
    "6bd25bf5f0595bbe24655141438e7a100b";

Identity RfcIdentity() {
  auto seed = *FromHex(kRfcSeed);
  return Identity::FromSeed(std::span<const std::byte, 32>(seed.data(), 32));
}

TEST(PublicKeyTest, Base64RoundTripMatchesLdapForm) {
  auto key = PublicKey::FromBase64(kRfcPublicBase64);
  ASSERT_TRUE(key.ok()) << key.error().ToString();
  EXPECT_EQ(ToHex(key->bytes), "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
  EXPECT_EQ(key->ToBase64(), kRfcPublicBase64);
  EXPECT_EQ(key->ToBase64().size(), PublicKey::kBase64Size);
}

TEST(PublicKeyTest, RejectsAnythingButCanonical44CharBase64) {
  for (std::string bad : {std::string(""), std::string(kRfcPublicBase64).substr(0, 43),
                          std::string(kRfcPublicBase64) + "=",
                          " " + std::string(kRfcPublicBase64).substr(1),
                          // URL-safe alphabet
                          std::string("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo="),
                          // non-zero padding bits: decodes to the same bytes, not canonical
                          std::string("11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURp="),
                          // 44 characters without padding: 33 bytes
                          std::string("11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURoA")}) {
    auto key = PublicKey::FromBase64(bad);
    ASSERT_FALSE(key.ok()) << "accepted '" << bad << "'";
    EXPECT_EQ(key.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(key.error().message().find("44 characters"), std::string::npos);
  }
}

TEST(IdentityTest, SeedGivesRfc8032KeyAndSignature) {
  Identity id = RfcIdentity();
  EXPECT_EQ(id.public_key().ToBase64(), kRfcPublicBase64);
  Signature sig = id.Sign({});
  EXPECT_EQ(ToHex(sig), kRfcEmptySignature);
  EXPECT_TRUE(VerifySignature(id.public_key(), {}, sig));
}

TEST(IdentityTest, SignaturesVerifyOnlyForTheSignedMessageAndKey) {
  Identity a = Identity::Generate();
  Identity b = Identity::Generate();
  EXPECT_NE(a.public_key(), b.public_key());
  auto msg = AsBytes("sparetime");
  Signature sig = a.Sign(msg);
  EXPECT_TRUE(VerifySignature(a.public_key(), msg, sig));
  EXPECT_FALSE(VerifySignature(b.public_key(), msg, sig));
  EXPECT_FALSE(VerifySignature(a.public_key(), AsBytes("sparetimf"), sig));
  sig[10] ^= std::byte{1};
  EXPECT_FALSE(VerifySignature(a.public_key(), msg, sig));
}

TEST(IdentityTest, SaveLoadRoundTripWithMode0600) {
  TempDir dir;
  Identity id = Identity::Generate();
  ASSERT_TRUE(id.Save(dir / "identity.key").ok());
  struct stat sb;
  ASSERT_EQ(::stat((dir / "identity.key").c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 0777, 0600u);
  EXPECT_EQ(sb.st_size, static_cast<off_t>(Identity::kFileSize));
  auto loaded = Identity::Load(dir / "identity.key");
  ASSERT_TRUE(loaded.ok()) << loaded.error().ToString();
  EXPECT_EQ(loaded->public_key(), id.public_key());
  // Same secret: the loaded key signs what the original verifies.
  EXPECT_TRUE(VerifySignature(id.public_key(), AsBytes("x"), loaded->Sign(AsBytes("x"))));
}

TEST(IdentityTest, LoadOrCreateCreatesOnceThenKeepsTheKey) {
  TempDir dir;
  std::string path = dir / "identity.key";
  auto first = Identity::LoadOrCreate(path);
  ASSERT_TRUE(first.ok()) << first.error().ToString();
  auto second = Identity::LoadOrCreate(path);
  ASSERT_TRUE(second.ok()) << second.error().ToString();
  EXPECT_EQ(first->public_key(), second->public_key());
}

TEST(IdentityTest, LoadRefusesMissingWorldReadableAndDamagedFiles) {
  TempDir dir;
  std::string path = dir / "identity.key";
  EXPECT_EQ(Identity::Load(path).error().code(), ErrorCode::kNotFound);

  ASSERT_TRUE(RfcIdentity().Save(path).ok());
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  auto open = Identity::Load(path);
  ASSERT_FALSE(open.ok());
  EXPECT_EQ(open.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_NE(open.error().message().find("chmod 600 " + path), std::string::npos);
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);

  std::vector<std::byte> good = ReadFileOrDie(path);
  auto expect_corrupt = [&](std::vector<std::byte> bytes, const std::string& why) {
    WriteFileOrDie(path, bytes);
    ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
    auto r = Identity::Load(path);
    ASSERT_FALSE(r.ok()) << why;
    EXPECT_EQ(r.error().code(), ErrorCode::kCorruption) << why;
    EXPECT_NE(r.error().message().find(path), std::string::npos) << r.error().message();
  };
  expect_corrupt({good.begin(), good.end() - 1}, "truncated");
  auto bad_magic = good;
  bad_magic[0] = std::byte{'X'};
  expect_corrupt(bad_magic, "magic");
  auto bad_public = good;
  bad_public[50] ^= std::byte{1};
  expect_corrupt(bad_public, "public key does not match seed");
}

}  // namespace
}  // namespace sparetime::transport
