// The backup path under privilege separation: ops::Backup running as nobody
// gets its device from a real privileged helper (forked as root, a real
// socketpair, SCM_RIGHTS) through BackupRequest::open_device, on a real
// local repository; the restored image equals the device byte for byte.
// Without the helper, nobody cannot read the device at all.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include <gtest/gtest.h>

#include "sparetime/imaging/device_fds.h"
#include "sparetime/ops/backup.h"
#include "sparetime/ops/backups.h"
#include "sparetime/ops/snapshots.h"
#include "sparetime/privsep/helper.h"
#include "testutil/testutil.h"

namespace sparetime::privsep {
namespace {

using sparetime::testing::RandomBytes;
using sparetime::testing::ReadFileOrDie;
using sparetime::testing::RunAsNobody;
using sparetime::testing::TempDir;
using sparetime::testing::WriteFileOrDie;

SecretBuffer Passphrase() {
  const std::string_view s = "correct horse";
  SecretBuffer b(s.size());
  std::memcpy(b.span().data(), s.data(), s.size());
  return b;
}

TEST(PrivsepBackup, NobodyBacksUpADeviceOnlyTheHelperOpens) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  TempDir dir;
  ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);
  const std::string device = dir / "disk.img";
  constexpr uint32_t kChunk = 64 << 10;
  const std::vector<std::byte> data = RandomBytes(7 * kChunk + 4096, 21);
  WriteFileOrDie(device, data);
  ASSERT_EQ(::chmod(device.c_str(), 0600), 0);  // root's only
  const std::string work = dir / "work";
  ASSERT_EQ(::mkdir(work.c_str(), 0700), 0);
  ASSERT_EQ(::chown(work.c_str(), 65534, 65534), 0);

  HelperPolicy policy;
  policy.allowed_devices = [device]() -> Result<std::vector<std::string>> {
    return std::vector<std::string>{device};
  };
  Result<HelperProcess> helper = StartHelper(policy);
  ASSERT_TRUE(helper.ok()) << helper.status().ToString();
  const int socket = helper->socket.get();

  int rc = RunAsNobody([&]() -> int {
    ops::OpenOptions o;
    o.where = ops::LocalRepository{work + "/repo"};
    ops::InitSettings settings{.chunk_size = kChunk, .zstd_level = 1};
    if (!ops::Init(o, Passphrase(), settings, KdfLimits::FastForTests()).ok()) return 2;
    Result<std::unique_ptr<ops::Backups>> backups = ops::Open(o, Passphrase());
    if (!backups.ok()) return 3;
    ops::BackupRequest r;
    r.device = device;
    // Without the helper: refused by the kernel.
    Result<Snapshot> denied = ops::Backup(**backups, r);
    if (denied.ok() || denied.status().code() != ErrorCode::kPermissionDenied) return 4;
    HelperClient client{Fd(::dup(socket))};
    int opened = 0;
    r.open_device = [&](const std::string& path,
                        DeviceOpenOptions options) -> Result<std::unique_ptr<BlockDevice>> {
      ++opened;
      ST_ASSIGN_OR_RETURN(DeviceFds fds, client.OpenDeviceRo(path, options.direct_io));
      return OpenBlockDeviceFds(path, std::move(fds.fd), std::move(fds.direct_fd));
    };
    Result<Snapshot> snap = ops::Backup(**backups, r);
    if (!snap.ok()) return 5;
    if (opened != 1 || snap->size != data.size() || snap->stats.chunks != 8) return 6;
    ops::RestoreRequest restore;
    restore.target = work + "/out.img";
    restore.buffered = true;
    Result<ops::RestoreReport> report = ops::RestoreSnapshot(**backups, restore);
    if (!report.ok() || report->snapshot.id != snap->id) return 7;
    return 0;
  });
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(ReadFileOrDie(work + "/out.img"), data);
  helper->socket.reset();
  int status = 0;
  EXPECT_EQ(::waitpid(helper->pid, &status, 0), helper->pid);
}

}  // namespace
}  // namespace sparetime::privsep
