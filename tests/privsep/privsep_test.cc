// Privilege separation (agent/privsep): the message format, the helper's
// policy check, and real processes — the helper forked as root, the client
// running as nobody in another process, descriptors passed over a real
// socketpair, the helper killed with SIGKILL.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "sparetime/imaging/device_fds.h"
#include "sparetime/privsep/helper.h"
#include "sparetime/privsep/protocol.h"
#include "testutil/testutil.h"

namespace sparetime::privsep {
namespace {

using sparetime::testing::LoopDevice;
using sparetime::testing::RandomBytes;
using sparetime::testing::ReadFileOrDie;
using sparetime::testing::RunAsNobody;
using sparetime::testing::TempDir;
using sparetime::testing::WriteFileOrDie;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(PrivsepProtocol, RequestRoundTripsByteForByte) {
  Request r{Command::kOpenDeviceRo, kFlagDirect, "/dev/vg0/root"};
  std::vector<std::byte> bytes = EncodeRequest(r);
  ASSERT_EQ(bytes.size(), 4u + 5u + 13u);
  EXPECT_EQ(bytes[0], std::byte{18});  // body length, little-endian
  EXPECT_EQ(bytes[4], std::byte{1});   // version
  EXPECT_EQ(bytes[5], std::byte{1});   // OPEN_DEVICE_RO
  EXPECT_EQ(bytes[6], std::byte{1});   // kFlagDirect
  Result<Request> back = DecodeRequest(bytes);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->command, Command::kOpenDeviceRo);
  EXPECT_EQ(back->flags, kFlagDirect);
  EXPECT_EQ(back->arg, "/dev/vg0/root");
  EXPECT_EQ(EncodeRequest(*back), bytes);

  Reply reply{ErrorCode::kPermissionDenied, 0, "refused"};
  Result<Reply> rb = DecodeReply(EncodeReply(reply));
  ASSERT_TRUE(rb.ok());
  EXPECT_EQ(rb->code, ErrorCode::kPermissionDenied);
  EXPECT_EQ(rb->text, "refused");
}

TEST(PrivsepProtocol, MalformedMessagesAreRefusedWithTheReason) {
  std::vector<std::byte> good = EncodeRequest({Command::kOpenDeviceRo, 0, "/dev/sda"});
  auto expect_refused = [](std::vector<std::byte> b, const std::string& text) {
    Result<Request> r = DecodeRequest(b);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(text), std::string::npos) << r.status().message();
  };
  expect_refused({good.begin(), good.begin() + 6}, "shorter than a header");
  std::vector<std::byte> b = good;
  b[0] = std::byte{99};
  expect_refused(b, "length field says 99 but 13 bytes follow");
  b = good;
  b[4] = std::byte{2};
  expect_refused(b, "version 2, expected 1");
  b = good;
  b[5] = std::byte{7};
  expect_refused(b, "unknown command 7");
  b = good;
  b[6] = std::byte{2};
  expect_refused(b, "flags 2 not defined for OPEN_DEVICE_RO");
  b = EncodeRequest({Command::kFreeze, 0, "/"});
  b[6] = std::byte{1};
  expect_refused(b, "flags 1 not defined for FREEZE");
  b = good;
  b[7] = std::byte{3};
  expect_refused(b, "string length 3 but 8 bytes follow");
  b = good;
  b[10] = std::byte{0};
  expect_refused(b, "NUL byte");
  expect_refused(EncodeRequest({Command::kOpenDeviceRo, 0, std::string(kMaxArg + 1, 'a')}),
                 "4106 bytes, more than the 4105 allowed");
  // A reply that refuses but carries descriptors.
  std::vector<std::byte> r = EncodeReply({ErrorCode::kPermissionDenied, 1, "x"});
  EXPECT_FALSE(DecodeReply(r).ok());
}

// A helper forked as root serving files of `dir`, logging to dir/helper.log.
struct Fixture {
  TempDir dir;
  std::string allowed = dir / "allowed.img";
  std::string other = dir / "other.img";
  std::string log = dir / "helper.log";
  std::vector<std::byte> data = RandomBytes(1 << 20, 7);
  HelperProcess helper;

  explicit Fixture(std::vector<std::string> list = {}) {
    WriteFileOrDie(allowed, data);
    WriteFileOrDie(other, RandomBytes(4096, 8));
    // Unreadable to nobody: only the helper can open them.
    ::chmod(allowed.c_str(), 0600);
    ::chmod(other.c_str(), 0600);
    ::chmod(dir.path().c_str(), 0755);
    if (list.empty()) list = {allowed};
    HelperPolicy policy;
    policy.allowed_devices = [list]() -> Result<std::vector<std::string>> { return list; };
    const std::string log_path = log;
    policy.log = [log_path](int priority, const std::string& line) {
      FILE* f = std::fopen(log_path.c_str(), "a");
      if (f == nullptr) return;
      std::fprintf(f, "<%d>%s\n", priority, line.c_str());
      std::fclose(f);
    };
    Result<HelperProcess> h = StartHelper(policy);
    if (!h.ok()) ADD_FAILURE() << h.status().ToString();
    helper = std::move(*h);
  }
  ~Fixture() {
    helper.socket.reset();
    int status = 0;
    if (helper.pid > 0) ::waitpid(helper.pid, &status, 0);
  }
};

TEST(Privsep, NobodyGetsTheListedDeviceAndNothingElse) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  Fixture f;
  const int socket = f.helper.socket.get();
  int rc = RunAsNobody([&]() -> int {
    if (::getuid() != 65534) return 2;
    // Nobody cannot read the file itself...
    if (::open(f.allowed.c_str(), O_RDONLY) >= 0 || errno != EACCES) return 3;
    HelperClient client{Fd(::dup(socket))};
    // ...but gets it, with an O_DIRECT twin, from the helper.
    Result<DeviceFds> fds = client.OpenDeviceRo(f.allowed, /*direct=*/true);
    if (!fds.ok()) return 4;
    if (!fds->direct_fd.valid()) return 5;
    if ((::fcntl(fds->direct_fd.get(), F_GETFL) & O_DIRECT) == 0) return 6;
    Result<std::unique_ptr<BlockDevice>> dev =
        OpenBlockDeviceFds(f.allowed, std::move(fds->fd), std::move(fds->direct_fd));
    if (!dev.ok() || (*dev)->size() != f.data.size()) return 7;
    AlignedBuffer buf(f.data.size());
    Result<size_t> got = (*dev)->ReadAt(0, buf.span());
    if (!got.ok() || *got != f.data.size()) return 8;
    if (std::memcmp(buf.data(), f.data.data(), f.data.size()) != 0) return 9;
    // A write through the passed descriptor fails: it is read-only.
    Result<DeviceFds> again = client.OpenDeviceRo(f.allowed, false);
    if (!again.ok() || again->direct_fd.valid()) return 10;
    if (::write(again->fd.get(), "x", 1) != -1 || errno != EBADF) return 11;
    // An unlisted file is refused, saying where to list it.
    Result<DeviceFds> no = client.OpenDeviceRo(f.other, false);
    if (no.ok() || no.status().code() != ErrorCode::kPermissionDenied) return 12;
    if (no.status().message() != "refused " + f.other +
                                     ": not among the devices this host lets sparetimed read; "
                                     "list it in [backup] devices of sparetime.conf, then "
                                     "systemctl reload sparetime") {
      return 13;
    }
    return 0;
  });
  EXPECT_EQ(rc, 0);
  std::string log = ReadAll(f.log);
  EXPECT_NE(log.find("<6>privileged helper: OPEN_DEVICE_RO " + f.allowed + " granted\n"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("<4>privileged helper: OPEN_DEVICE_RO refused " + f.other), std::string::npos)
      << log;
}

TEST(Privsep, PathTricksAreRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  Fixture f;
  ASSERT_EQ(::mkdir((f.dir / "sub").c_str(), 0755), 0);
  ASSERT_EQ(::symlink(f.other.c_str(), (f.dir / "sub/link.img").c_str()), 0);
  ASSERT_EQ(::symlink(f.allowed.c_str(), (f.dir / "sub/ok.img").c_str()), 0);
  HelperClient client{Fd(::dup(f.helper.socket.get()))};
  struct Case {
    std::string path;
    std::string message;
  };
  const std::vector<Case> cases = {
      {f.dir / "sub/link.img",
       "refused " + (f.dir / "sub/link.img") + ": not among the devices this host lets"},
      {f.dir / "sub/../other.img",
       "refused " + (f.dir / "sub/../other.img") + ": a path with \".\" or \"..\" components"},
      {f.dir / "sub/../allowed.img",
       "refused " + (f.dir / "sub/../allowed.img") + ": a path with \".\" or \"..\" components"},
      {f.dir / "./allowed.img", "a path with \".\" or \"..\" components"},
      {"allowed.img", "refused \"allowed.img\": name the device by its absolute path"},
      {f.dir.path(), "not a block device or image file"},
  };
  for (const Case& c : cases) {
    Result<DeviceFds> r = client.OpenDeviceRo(c.path, false);
    ASSERT_FALSE(r.ok()) << c.path;
    EXPECT_EQ(r.status().code(), ErrorCode::kPermissionDenied) << c.path;
    EXPECT_NE(r.status().message().find(c.message), std::string::npos) << r.status().message();
  }
  // A symlink to the listed file is the same file: granted.
  Result<DeviceFds> ok = client.OpenDeviceRo(f.dir / "sub/ok.img", false);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  Result<DeviceFds> missing = client.OpenDeviceRo(f.dir / "nothing.img", false);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), ErrorCode::kNotFound);
}

TEST(Privsep, MalformedAndReservedRequestsAreAnsweredAndTheHelperServesOn) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  Fixture f;
  HelperClient client{Fd(::dup(f.helper.socket.get()))};
  std::vector<std::byte> bad = EncodeRequest({Command::kOpenDeviceRo, 0, f.allowed});
  bad[4] = std::byte{9};
  Result<Reply> r = client.CallRaw(bad, nullptr);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(r->fd_count, 0);
  EXPECT_NE(r->text.find("version 9, expected 1"), std::string::npos) << r->text;
  Result<Reply> freeze = client.Call({Command::kFreeze, 0, "/"}, nullptr);
  ASSERT_TRUE(freeze.ok());
  EXPECT_EQ(freeze->code, ErrorCode::kFailedPrecondition);
  EXPECT_EQ(freeze->text, "FREEZE is not implemented in this version of sparetimed");
  Result<DeviceFds> ok = client.OpenDeviceRo(f.allowed, false);
  EXPECT_TRUE(ok.ok()) << ok.status().ToString();
}

TEST(Privsep, AListedLoopDeviceMatchesByDeviceNumber) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  TempDir backing;
  std::vector<std::byte> data = RandomBytes(4 << 20, 11);
  WriteFileOrDie(backing / "disk.img", data);
  WriteFileOrDie(backing / "disk2.img", RandomBytes(1 << 20, 12));
  LoopDevice loop(backing / "disk.img");
  LoopDevice loop2(backing / "disk2.img");
  std::string link = backing / "by-name";
  ASSERT_EQ(::symlink(loop.path().c_str(), link.c_str()), 0);
  // Listed by a symlink (as /dev/vg/root is), asked for by the node.
  Fixture f({link});
  HelperClient client{Fd(::dup(f.helper.socket.get()))};
  Result<DeviceFds> fds = client.OpenDeviceRo(loop.path(), true);
  ASSERT_TRUE(fds.ok()) << fds.status().ToString();
  Result<std::unique_ptr<BlockDevice>> dev =
      OpenBlockDeviceFds(loop.path(), std::move(fds->fd), std::move(fds->direct_fd));
  ASSERT_TRUE(dev.ok()) << dev.status().ToString();
  EXPECT_EQ((*dev)->identity().kind, "block");
  EXPECT_EQ((*dev)->size(), data.size());
  EXPECT_EQ((*dev)->identity().backing_file, backing / "disk.img");
  AlignedBuffer buf(data.size());
  ASSERT_EQ((*dev)->ReadAt(0, buf.span()).value(), data.size());
  EXPECT_EQ(std::memcmp(buf.data(), data.data(), data.size()), 0);
  Result<DeviceFds> no = client.OpenDeviceRo(loop2.path(), false);
  ASSERT_FALSE(no.ok());
  EXPECT_EQ(no.status().code(), ErrorCode::kPermissionDenied);
}

TEST(Privsep, AKilledHelperIsReportedToTheClient) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  Fixture f;
  HelperClient client{Fd(::dup(f.helper.socket.get()))};
  f.helper.socket.reset();
  EXPECT_FALSE(client.WaitGone(std::chrono::milliseconds(0)));
  ASSERT_EQ(::kill(f.helper.pid, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(f.helper.pid, &status, 0), f.helper.pid);
  f.helper.pid = -1;
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_TRUE(client.WaitGone(std::chrono::seconds(5)));
  Result<DeviceFds> r = client.OpenDeviceRo(f.allowed, false);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(r.status().message(),
            "the privileged helper is gone (killed or crashed); sparetimed exits and systemd "
            "restarts it");
}

TEST(Privsep, TheHelperExitsWhenTheDaemonClosesItsEnd) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  Fixture f;
  f.helper.socket.reset();
  int status = -1;
  ASSERT_EQ(::waitpid(f.helper.pid, &status, 0), f.helper.pid);
  f.helper.pid = -1;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

TEST(Privsep, DropPrivilegesLeavesNoWayBack) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  pid_t pid = ::fork();
  if (pid == 0) {
    Status s = DropPrivileges("nobody");
    if (!s.ok()) ::_exit(2);
    if (::getuid() != 65534 || ::geteuid() != 65534) ::_exit(3);
    if (::setuid(0) == 0 || ::seteuid(0) == 0) ::_exit(4);
    gid_t groups[4];
    int n = ::getgroups(4, groups);
    if (n < 0 || n > 1 || (n == 1 && groups[0] != ::getgid())) ::_exit(5);
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;

  Status none = DropPrivileges("no-such-user-sparetime");
  EXPECT_EQ(none.code(), ErrorCode::kNotFound);
  EXPECT_NE(none.message().find("no user no-such-user-sparetime"), std::string::npos);
  EXPECT_EQ(DropPrivileges("root").code(), ErrorCode::kInvalidArgument);
  // Still root: the refusals changed nothing.
  EXPECT_EQ(::geteuid(), 0u);
}

}  // namespace
}  // namespace sparetime::privsep
