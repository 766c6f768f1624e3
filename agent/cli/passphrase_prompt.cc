// Passphrase from a file, the environment or the terminal (passphrase_prompt.h).
//
// Invariants: echo is switched off only on /dev/tty and restored before
// returning, whatever happens; the answer never leaves sodium memory.
#include "passphrase_prompt.h"

#include <fcntl.h>
#include <sodium.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "sparetime/base/fd.h"
#include "sparetime/imaging/keys.h"

namespace sparetime::cli {
namespace {

constexpr size_t kMaxAnswer = 4096;

// Echo off for the life of the object.
class NoEcho {
 public:
  explicit NoEcho(int fd) : fd_(fd) {
    if (::tcgetattr(fd_, &saved_) == 0) {
      struct termios t = saved_;
      t.c_lflag &= ~static_cast<tcflag_t>(ECHO);
      t.c_lflag |= ECHONL;
      ok_ = ::tcsetattr(fd_, TCSAFLUSH, &t) == 0;
    }
  }
  ~NoEcho() {
    if (ok_) ::tcsetattr(fd_, TCSAFLUSH, &saved_);
  }
  bool ok() const { return ok_; }

 private:
  int fd_;
  struct termios saved_ {};
  bool ok_ = false;
};

Result<SecretBuffer> AskOnce(int fd, const char* prompt) {
  if (::write(fd, prompt, std::strlen(prompt)) < 0) return ErrnoStatus("write to the terminal", errno);
  NoEcho no_echo(fd);
  if (!no_echo.ok()) return ErrnoStatus("turn off echo on the terminal", errno);
  SecretBuffer buf(kMaxAnswer + 1);
  size_t len = 0;
  while (true) {
    char c;
    ssize_t n = ::read(fd, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus("read the passphrase from the terminal", errno);
    if (n == 0 || c == '\n' || c == '\r') break;
    if (len == kMaxAnswer) {
      return InvalidArgument("the passphrase is longer than 4096 bytes");
    }
    buf.data()[len++] = static_cast<std::byte>(c);
    c = 0;
  }
  if (len == 0) return InvalidArgument("empty passphrase: nothing was typed, nothing was changed");
  SecretBuffer out(len);
  std::memcpy(out.data(), buf.data(), len);
  return out;
}

}  // namespace

Result<SecretBuffer> ObtainPassphrase(const PassphraseSource& source) {
  if (source.file) return ReadPassphrase(source.file);
  const char* env = std::getenv(source.env);
  if (env != nullptr && env[0] != '\0') {
    SecretBuffer out(std::strlen(env));
    std::memcpy(out.data(), env, out.size());
    return out;
  }
  int fd = ::open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (fd < 0 || !::isatty(fd)) {
    if (fd >= 0) ::close(fd);
    return InvalidArgument(std::string("no passphrase given and no terminal to ask on: set ") +
                           source.env + ", pass " + source.flag +
                           " (a file only you can read), or run on a terminal");
  }
  Fd tty(fd);
  ST_ASSIGN_OR_RETURN(SecretBuffer first, AskOnce(tty.get(), source.prompt));
  if (!source.confirm) return first;
  ST_ASSIGN_OR_RETURN(SecretBuffer second, AskOnce(tty.get(), "Repeat it: "));
  if (first.size() != second.size() ||
      sodium_memcmp(first.data(), second.data(), first.size()) != 0) {
    return InvalidArgument("the two passphrases differ: nothing was changed; try again");
  }
  return first;
}

}  // namespace sparetime::cli
