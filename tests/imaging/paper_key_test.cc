// Paper recovery kit (imaging/paper_key.h): the documented vector
// (docs/formats.md "Paper recovery kit", cross-checked with Python's hashlib
// and base64), the round trip, and a kit with one character wrong — the
// error names the line.
#include "sparetime/imaging/paper_key.h"

#include <gtest/gtest.h>

#include <string>

#include "imaging/keys_testing.h"
#include "sparetime/imaging/key_file.h"
#include "sparetime/imaging/keys.h"

namespace sparetime {
namespace {

using testing::Hex;
using testing::VectorMaster;

constexpr std::string_view kVectorKit =
    "sparetime recovery kit v1\n"
    "host: alpha\n"
    "key id: 9743cfa5664f69d202ec2f77d63250ee\n"
    "1: AAAQ-EA2G\n"
    "2: AQCQ-MBZX\n"
    "3: BAEQ-UC3A\n"
    "4: BQGQ-4D56\n"
    "5: CAIR-EE2Y\n"
    "6: CQKR-MF2K\n"
    "7: DAMR-UGYJ\n"
    "8: DQOR-4H3Q\n";

std::string Text(const SecretBuffer& b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

class PaperKeyTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(InitCrypto().ok()); }
};

TEST_F(PaperKeyTest, Vector) {
  EXPECT_EQ(Text(PaperKitText(VectorMaster(), "alpha")), kVectorKit);
  Result<PaperKit> kit = ParsePaperKit(kVectorKit);
  ASSERT_TRUE(kit.ok()) << kit.status().ToString();
  EXPECT_EQ(kit->host, "alpha");
  EXPECT_EQ(kit->key_id, "9743cfa5664f69d202ec2f77d63250ee");
  EXPECT_EQ(Hex(kit->master), Hex(VectorMaster()));
}

TEST_F(PaperKeyTest, RoundTripOfRandomKeysAsTypedBack) {
  for (int i = 0; i < 50; ++i) {
    SecretBuffer master = NewMasterKey();
    std::string text = Text(PaperKitText(master, "host" + std::to_string(i)));
    // Typed back carelessly: lower case, no dash, extra spaces, blank lines.
    std::string typed;
    for (char c : text) {
      if (c == '-') continue;
      typed += static_cast<char>(c >= 'A' && c <= 'Z' && i % 2 ? c - 'A' + 'a' : c);
      if (c == '\n') typed += "  \n";
    }
    Result<PaperKit> kit = ParsePaperKit(typed);
    ASSERT_TRUE(kit.ok()) << kit.status().ToString() << "\n" << typed;
    EXPECT_EQ(Hex(kit->master), Hex(master));
    EXPECT_EQ(kit->host, "host" + std::to_string(i));
  }
}

TEST_F(PaperKeyTest, ZeroAndOneReadAsOAndI) {
  std::string text(kVectorKit);
  // Line 1 has no O or I; build a kit and swap one O for 0 where present.
  for (int attempt = 0; attempt < 200; ++attempt) {
    SecretBuffer master = NewMasterKey();
    std::string t = Text(PaperKitText(master, "h"));
    size_t at = t.find_first_of("OI", t.find("1: "));
    if (at == std::string::npos) continue;
    t[at] = t[at] == 'O' ? '0' : '1';
    Result<PaperKit> kit = ParsePaperKit(t);
    ASSERT_TRUE(kit.ok()) << kit.status().ToString();
    EXPECT_EQ(Hex(kit->master), Hex(master));
    return;
  }
  FAIL() << "no kit with an O or I in 200 tries";
}

TEST_F(PaperKeyTest, OneWrongCharacterNamesItsLine) {
  for (int line = 1; line <= kPaperLines; ++line) {
    std::string text(kVectorKit);
    size_t at = text.find(std::to_string(line) + ": ") + 3;
    text[at + 1] = text[at + 1] == 'Z' ? 'Y' : 'Z';
    Result<PaperKit> kit = ParsePaperKit(text);
    ASSERT_FALSE(kit.ok()) << "line " << line;
    EXPECT_EQ(kit.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(kit.status().message().find("line " + std::to_string(line) + " of the recovery kit "
                                          "is wrong"),
              std::string::npos)
        << kit.status().message();
  }
}

TEST_F(PaperKeyTest, MissingShortOrForeignLinesAreRefused) {
  std::string missing(kVectorKit);
  missing.erase(missing.find("5: "), 13);
  EXPECT_NE(ParsePaperKit(missing).status().message().find("line 5 of the recovery kit is missing"),
            std::string::npos);
  std::string short_line(kVectorKit);
  short_line.erase(short_line.find("CQKR") + 2, 1);
  EXPECT_NE(ParsePaperKit(short_line).status().message().find("line 6 of the recovery kit has 7"),
            std::string::npos);
  std::string no_header(kVectorKit);
  no_header.erase(0, no_header.find('\n') + 1);
  EXPECT_NE(ParsePaperKit(no_header).status().message().find("not a sparetime recovery kit"),
            std::string::npos);
  // Lines from another kit: each passes its check, the key id does not match.
  std::string other = Text(PaperKitText(NewMasterKey(), "alpha"));
  std::string mixed(kVectorKit);
  mixed.replace(mixed.find("8: "), 12, other.substr(other.find("8: "), 12));
  Result<PaperKit> kit = ParsePaperKit(mixed);
  ASSERT_FALSE(kit.ok());
  EXPECT_NE(kit.status().message().find("do not make the key"), std::string::npos)
      << kit.status().message();
}

}  // namespace
}  // namespace sparetime
