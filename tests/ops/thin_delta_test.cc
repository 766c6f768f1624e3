// thin_delta's output (thin-provisioning-tools 0.9, `thin_delta -m --snap1 A
// --snap2 B`) read into changed byte ranges, and those into the chunks no
// change touches. The tool itself runs only in the VM lab
// (tests/vm/scenarios/lvm_snapshot.sh), where dm-thin exists.
#include "sparetime/ops/thin_delta.h"

#include <gtest/gtest.h>

namespace sparetime::ops {
namespace {

// 64 KiB blocks (128 sectors): the default of an LVM thin pool.
constexpr char kDelta[] = R"(<superblock uuid="" time="3" transaction="4" data_block_size="128" nr_data_blocks="1600">
  <diff left="1" right="2">
    <same begin="0" length="16"/>
    <different begin="16" length="1"/>
    <same begin="17" length="100"/>
    <right_only begin="117" length="3"/>
    <left_only begin="120" length="2"/>
    <same begin="200" length="10"/>
  </diff>
</superblock>
)";

TEST(ThinDeltaTest, EverythingButSameIsChangedAndNeighboursMerge) {
  auto changed = ParseThinDelta(kDelta);
  ASSERT_TRUE(changed.ok()) << changed.status().ToString();
  ASSERT_EQ(changed->size(), 2u);
  EXPECT_EQ((*changed)[0].offset, 16u * 65536);
  EXPECT_EQ((*changed)[0].length, 65536u);
  EXPECT_EQ((*changed)[1].offset, 117u * 65536);  // right_only + left_only, adjacent
  EXPECT_EQ((*changed)[1].length, 5u * 65536);
}

TEST(ThinDeltaTest, NoDifferenceIsNoChangedRange) {
  auto changed = ParseThinDelta(
      "<superblock uuid=\"\" time=\"1\" transaction=\"2\" data_block_size=\"256\" "
      "nr_data_blocks=\"10\">\n  <diff left=\"1\" right=\"2\">\n    <same begin=\"0\" "
      "length=\"10\"/>\n  </diff>\n</superblock>\n");
  ASSERT_TRUE(changed.ok()) << changed.status().ToString();
  EXPECT_TRUE(changed->empty());
}

TEST(ThinDeltaTest, UnreadableOutputIsAnError) {
  EXPECT_EQ(ParseThinDelta("").status().code(), ErrorCode::kCorruption);
  EXPECT_EQ(ParseThinDelta("<diff left=\"1\" right=\"2\"><different begin=\"1\" length=\"2\"/>")
                .status()
                .code(),
            ErrorCode::kCorruption);  // no superblock: block size unknown
  EXPECT_EQ(ParseThinDelta("<superblock data_block_size=\"128\"><diff><same begin=\"x\"/>")
                .status()
                .code(),
            ErrorCode::kCorruption);
  EXPECT_EQ(ParseThinDelta("<superblock data_block_size=\"128\">").status().code(),
            ErrorCode::kCorruption);  // no <diff>
}

TEST(ThinDeltaTest, UnchangedChunksAreThoseNoRangeTouches) {
  auto changed = ParseThinDelta(kDelta);
  ASSERT_TRUE(changed.ok());
  // 1 MiB chunks = 16 blocks; 10 MiB image: chunk 1 (block 16) and chunk 7
  // (blocks 112..127 hold 117..121) changed.
  std::vector<uint64_t> got = UnchangedChunks(*changed, 10u << 20, 1u << 20);
  EXPECT_EQ(got, (std::vector<uint64_t>{0, 2, 3, 4, 5, 6, 8, 9}));
  // A short last chunk, and a range crossing a chunk boundary.
  std::vector<ByteRange> across = {{(1u << 20) - 512, 1024}};
  EXPECT_EQ(UnchangedChunks(across, (3u << 20) - 4096, 1u << 20),
            (std::vector<uint64_t>{2}));
  EXPECT_EQ(UnchangedChunks({}, (2u << 20) + 1, 1u << 20), (std::vector<uint64_t>{0, 1, 2}));
}

}  // namespace
}  // namespace sparetime::ops
