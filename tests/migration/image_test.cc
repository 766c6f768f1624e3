// ProcessImage file format: round trip of every field group, and refusal of
// damaged or foreign files.
#include "sparetime/migration/image.h"

#include <gtest/gtest.h>
#include <sys/user.h>

#include <fstream>

#include "testutil/testutil.h"

namespace sparetime::migration {
namespace {

using sparetime::testing::TempDir;

ProcessImage SampleImage() {
  ProcessImage im;
  im.pid = 4242;
  im.comm = "sample";
  im.kernel_release = "6.18.0";
  im.regs.assign(sizeof(user_regs_struct), std::byte{7});
  im.xstate.assign(2440, std::byte{9});
  im.xcr0 = 0x207;
  im.pages.assign(3 * kPageSize, std::byte{0});
  im.pages[kPageSize] = std::byte{0x42};
  Mapping m;
  m.kind = Mapping::Kind::kPrivateFile;
  m.start = 0x400000;
  m.end = 0x403000;
  m.prot = 3;
  m.path = "/bin/true";
  m.file = {1234, 5678};
  m.pages.push_back({0x401000, 2, 0});
  im.mappings.push_back(m);
  im.vdso.areas = {{"[vvar]", 0x7f0000000000, 0x7f0000004000}, {"[vdso]", 0x7f0000004000, 0x7f0000005000}};
  im.vdso.code = {0x7f0000004000, 1, 2};
  im.mm.brk = 0x600000;
  im.auxv = {std::byte{1}, std::byte{2}};
  im.exe_path = "/bin/true";
  im.actions.push_back({10, 0x401234, 0x14000000, 0x405678, 0});
  PendingSignal p;
  p.shared = true;
  p.info[0] = std::byte{10};
  im.pending.push_back(p);
  im.itimers[0] = {0, 5000, 0, 1000};
  FdEntry f;
  f.fd = 3;
  f.path = "/tmp/x";
  f.flags = 01;
  f.offset = 99;
  im.fds.push_back(f);
  FdEntry d;
  d.fd = 4;
  d.kind = FdEntry::Kind::kDup;
  d.dup_of = 3;
  im.fds.push_back(d);
  im.pipes.push_back({77, 65536, {std::byte{'h'}, std::byte{'i'}}});
  im.cwd = "/";
  im.rlimits[7] = {1024, 4096};
  im.creds.groups = {1, 2};
  return im;
}

TEST(ImageTest, RoundTripsThroughAFile) {
  TempDir tmp;
  ProcessImage im = SampleImage();
  ASSERT_TRUE(WriteImage(im, tmp / "img").ok());
  auto back = ReadImage(tmp / "img");
  ASSERT_TRUE(back.ok()) << back.error().ToString();
  EXPECT_EQ(back->pid, 4242);
  EXPECT_EQ(back->regs, im.regs);
  EXPECT_EQ(back->xstate, im.xstate);
  EXPECT_EQ(back->pages, im.pages);
  ASSERT_EQ(back->mappings.size(), 1u);
  EXPECT_EQ(back->mappings[0].kind, Mapping::Kind::kPrivateFile);
  EXPECT_EQ(back->mappings[0].pages[0].count, 2u);
  EXPECT_EQ(back->mappings[0].file.mtime_ns, 5678);
  EXPECT_EQ(back->vdso.areas[1].name, "[vdso]");
  EXPECT_EQ(back->actions[0].restorer, 0x405678u);
  EXPECT_TRUE(back->pending[0].shared);
  EXPECT_EQ(back->pending[0].info, im.pending[0].info);
  EXPECT_EQ(back->itimers[0].interval_usec, 5000);
  EXPECT_EQ(back->fds[1].kind, FdEntry::Kind::kDup);
  EXPECT_EQ(back->fds[0].offset, 99u);
  EXPECT_EQ(back->pipes[0].data, im.pipes[0].data);
  EXPECT_EQ(back->rlimits[7][1], 4096u);
  EXPECT_EQ(back->creds.groups, im.creds.groups);
  // Pages start on a 4 KiB boundary of the file, ready to be chunked.
  auto bytes = sparetime::testing::ReadFileOrDie(tmp / "img");
  EXPECT_EQ(bytes.size() % kPageSize, 0u);
  EXPECT_EQ(bytes[bytes.size() - 2 * kPageSize], std::byte{0x42});
}

TEST(ImageTest, RejectsForeignTruncatedAndInconsistentFiles) {
  TempDir tmp;
  std::ofstream(tmp / "foreign") << "not an image at all, clearly";
  auto foreign = ReadImage(tmp / "foreign");
  ASSERT_FALSE(foreign.ok());
  EXPECT_EQ(foreign.error().code(), ErrorCode::kCorruption);
  EXPECT_NE(foreign.error().message().find("bad magic"), std::string::npos);

  ASSERT_TRUE(WriteImage(SampleImage(), tmp / "img").ok());
  auto bytes = sparetime::testing::ReadFileOrDie(tmp / "img");
  bytes.resize(bytes.size() - 100);
  sparetime::testing::WriteFileOrDie(tmp / "cut", bytes);
  auto cut = ReadImage(tmp / "cut");
  ASSERT_FALSE(cut.ok());
  EXPECT_EQ(cut.error().code(), ErrorCode::kCorruption);

  ProcessImage bad = SampleImage();
  bad.mappings[0].pages[0].first = 2;  // runs past the 3-page store
  ASSERT_TRUE(WriteImage(bad, tmp / "bad").ok());
  auto inconsistent = ReadImage(tmp / "bad");
  ASSERT_FALSE(inconsistent.ok());
  EXPECT_NE(inconsistent.error().message().find("outside"), std::string::npos) << inconsistent.error().ToString();

  ProcessImage future = SampleImage();
  future.version = 99;
  auto decoded = DecodeManifest(EncodeManifest(future), future.page_count());
  ASSERT_FALSE(decoded.ok());
  EXPECT_NE(decoded.error().message().find("version 99"), std::string::npos);
}

}  // namespace
}  // namespace sparetime::migration
