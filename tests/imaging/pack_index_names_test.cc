// PackIndex turns a pack's name column in index.db into a file path. A
// damaged or edited index.db must not point a read (or a repack's rewrite
// and delete) at "../", an absolute path or another pack's file: only the
// exact name the naming scheme gives that pack id is accepted, anything
// else is kCorruption saying to restore index.db (issue 26).
#include <gtest/gtest.h>

#include <filesystem>

#include "imaging/pack_store_testing.h"

namespace sparetime::testing {
namespace {

class PackIndexNamesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = MustCreate(t_.path());
    ASSERT_NE(s, nullptr);
    MustPut(*s, 1, 1000);
    ASSERT_TRUE(s->Flush().ok());
    pack_name_ = "packs/01/00000001.pack";
    ASSERT_TRUE(std::filesystem::exists(t_ / pack_name_)) << "the scheme the test assumes";
    ASSERT_EQ(SqlInt(t_ / "index.db", "SELECT COUNT(*) FROM packs WHERE name = '" + pack_name_ +
                                          "'"),
              1);
  }

  // Renames pack 1 in index.db, reopens and reads chunk 1: the status.
  Status ReadWithName(const std::string& name) {
    SqlExec(t_ / "index.db", "UPDATE packs SET name = '" + name + "' WHERE id = 1");
    auto s = PackStore::Open(t_.path());
    if (!s.ok()) return s.status();
    return (*s)->Get(TestChunkId(1)).status();
  }

  TempDir t_;
  std::string pack_name_;
};

TEST_F(PackIndexNamesTest, TheSchemeNameReads) {
  auto s = MustOpen(t_.path());
  ASSERT_NE(s, nullptr);
  ExpectChunk(*s, 1, 1000);
}

TEST_F(PackIndexNamesTest, NamesOutsideTheSchemeAreCorruption) {
  // A file the name would reach, so only the check can refuse it.
  std::filesystem::copy_file(t_ / pack_name_, t_ / "stolen.pack");
  std::filesystem::create_directories(t_ / "packs/02");
  std::filesystem::copy_file(t_ / pack_name_, t_ / "packs/02/00000002.pack");
  const std::vector<std::string> bad = {
      "../" + std::filesystem::path(t_.path()).filename().string() + "/" + pack_name_,
      "packs/01/../../stolen.pack",
      t_ / pack_name_,  // absolute, even to the right file
      "stolen.pack",
      "packs/02/00000002.pack",  // another pack's name
      "packs/01/00000001.pack/",
      "packs/01/00000001.PACK",
      "",
  };
  for (const std::string& name : bad) {
    Status s = ReadWithName(name);
    EXPECT_EQ(s.code(), ErrorCode::kCorruption) << "'" << name << "': " << s.ToString();
    EXPECT_NE(s.message().find("not a pack name (packs/01/00000001.pack)"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("restore it from a copy"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("index.db"), std::string::npos) << s.message();
  }
  // The right name reads again: nothing was changed by the refusals.
  ASSERT_TRUE(ReadWithName(pack_name_).ok());
  auto s = MustOpen(t_.path());
  ASSERT_NE(s, nullptr);
  ExpectChunk(*s, 1, 1000);
}

}  // namespace
}  // namespace sparetime::testing
