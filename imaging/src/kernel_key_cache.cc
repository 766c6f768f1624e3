// KernelKeyCache: KeyCache over the calling user's kernel keyring, with the
// raw add_key(2)/keyctl(2) system calls (no libkeyutils). Every failure of the
// keyring (ENOSYS, EACCES under a seccomp filter, EDQUOT, EKEYEXPIRED) is a
// cache miss or a skipped Keep: the cache only ever saves an Argon2id run.
#include <linux/keyctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "sparetime/imaging/key_cache.h"

namespace sparetime {
namespace {

constexpr char kKeyType[] = "user";
constexpr std::string_view kPrefix = "sparetime:";
// A payload is a key and a tag; anything much bigger is not ours.
constexpr long kMaxPayloadBytes = 1024;

// Permission bits (keyctl_setperm(3)); linux/keyctl.h leaves them to keyutils.
constexpr uint32_t kPosView = 0x01000000, kPosRead = 0x02000000, kPosWrite = 0x04000000,
                   kPosSearch = 0x08000000, kPosSetattr = 0x20000000;
constexpr uint32_t kUsrView = 0x00010000, kUsrRead = 0x00020000, kUsrWrite = 0x00040000,
                   kUsrSearch = 0x00080000, kUsrSetattr = 0x00200000;
// The owner's processes may use and replace it; group and others nothing.
constexpr uint32_t kPermission = kPosView | kPosRead | kPosWrite | kPosSearch | kPosSetattr |
                                 kUsrView | kUsrRead | kUsrWrite | kUsrSearch | kUsrSetattr;

long Keyctl(int op, unsigned long a2, unsigned long a3 = 0, unsigned long a4 = 0,
            unsigned long a5 = 0) {
  long r;
  do {
    r = ::syscall(SYS_keyctl, op, a2, a3, a4, a5);
  } while (r < 0 && errno == EINTR);
  return r;
}

std::string Description(const std::string& name) { return std::string(kPrefix) + name; }

class KernelKeyCacheImpl : public KeyCache {
 public:
  explicit KernelKeyCacheImpl(std::chrono::seconds lifetime) : lifetime_(lifetime) {}

  std::optional<SecretBuffer> Find(const std::string& name) const override {
    const std::string description = Description(name);
    long id =
        Keyctl(KEYCTL_SEARCH, KEY_SPEC_USER_KEYRING, reinterpret_cast<unsigned long>(kKeyType),
               reinterpret_cast<unsigned long>(description.c_str()), 0);
    if (id < 0) return std::nullopt;
    long size = Keyctl(KEYCTL_READ, static_cast<unsigned long>(id), 0, 0);
    if (size <= 0 || size > kMaxPayloadBytes) return std::nullopt;
    SecretBuffer payload(static_cast<size_t>(size));
    long read = Keyctl(KEYCTL_READ, static_cast<unsigned long>(id),
                       reinterpret_cast<unsigned long>(payload.data()), payload.size());
    if (read != size) return std::nullopt;  // replaced meanwhile: a miss
    return payload;
  }

  void Keep(const std::string& name, const SecretBuffer& payload) const override {
    if (lifetime_.count() <= 0) return;
    const std::string description = Description(name);
    long id = ::syscall(SYS_add_key, kKeyType, description.c_str(), payload.data(), payload.size(),
                        KEY_SPEC_USER_KEYRING);
    if (id < 0) return;
    const auto key = static_cast<unsigned long>(id);
    if (Keyctl(KEYCTL_SETPERM, key, kPermission) != 0 ||
        Keyctl(KEYCTL_SET_TIMEOUT, key, static_cast<unsigned long>(lifetime_.count())) != 0) {
      Keyctl(KEYCTL_INVALIDATE, key);  // never leave a key without its expiry
    }
  }

 private:
  std::chrono::seconds lifetime_;
};

}  // namespace

std::unique_ptr<KeyCache> KernelKeyCache(std::chrono::seconds lifetime) {
  return std::make_unique<KernelKeyCacheImpl>(lifetime);
}

Result<int> ForgetKernelCachedKeys() {
  // The user keyring's contents: an array of key serials.
  std::vector<int32_t> ids(64);
  for (;;) {
    long bytes = Keyctl(KEYCTL_READ, KEY_SPEC_USER_KEYRING,
                        reinterpret_cast<unsigned long>(ids.data()), ids.size() * sizeof(int32_t));
    if (bytes < 0) {
      if (errno == ENOKEY || errno == EKEYEXPIRED) return 0;
      return ErrnoStatus("reading the user keyring", errno);
    }
    size_t count = static_cast<size_t>(bytes) / sizeof(int32_t);
    if (count <= ids.size()) {
      ids.resize(count);
      break;
    }
    ids.resize(count);
  }
  int removed = 0;
  for (int32_t id : ids) {
    char text[512];
    long n = Keyctl(KEYCTL_DESCRIBE, static_cast<unsigned long>(id),
                    reinterpret_cast<unsigned long>(text), sizeof text);
    if (n <= 0 || static_cast<size_t>(n) > sizeof text) continue;  // gone, or not ours to see
    // "type;uid;gid;perm;description"
    std::string_view d(text, std::strlen(text));
    if (!d.starts_with(std::string(kKeyType) + ";")) continue;
    size_t last = d.rfind(';');
    if (last == std::string_view::npos || !d.substr(last + 1).starts_with(kPrefix)) continue;
    if (Keyctl(KEYCTL_INVALIDATE, static_cast<unsigned long>(id)) == 0) {
      ++removed;
    } else if (errno != ENOKEY && errno != EKEYEXPIRED) {
      return ErrnoStatus("removing a cached key from the user keyring", errno);
    }
  }
  return removed;
}

}  // namespace sparetime
