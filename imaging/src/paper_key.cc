// Paper recovery kit: encode/parse (see paper_key.h; docs/formats.md
// "Paper recovery kit").
//
// Invariants: the master key and the kit text live only in SecretBuffers;
// each line is checked on its own (so the error names it) before the whole
// key is checked against the key id.
#include "sparetime/imaging/paper_key.h"

#include <sodium.h>

#include <array>
#include <cctype>
#include <cstring>

#include "sparetime/imaging/key_file.h"
#include "sparetime/imaging/keys.h"

namespace sparetime {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
constexpr std::string_view kHeader = "sparetime recovery kit v1";
constexpr std::string_view kCheckDomain = "sparetime paper v1";
constexpr size_t kBytesPerLine = 4;

unsigned char CheckByte(int line, const unsigned char* data) {
  unsigned char msg[kCheckDomain.size() + 1 + kBytesPerLine];
  std::memcpy(msg, kCheckDomain.data(), kCheckDomain.size());
  msg[kCheckDomain.size()] = static_cast<unsigned char>(line);
  std::memcpy(msg + kCheckDomain.size() + 1, data, kBytesPerLine);
  unsigned char out = 0;
  crypto_generichash(&out, 1, msg, sizeof msg, nullptr, 0);
  sodium_memzero(msg, sizeof msg);
  return out;
}

// 5 bytes -> 8 base32 characters.
void Encode5(const unsigned char* in, char* out) {
  uint64_t v = 0;
  for (int i = 0; i < 5; ++i) v = (v << 8) | in[i];
  for (int i = 7; i >= 0; --i) {
    out[i] = kAlphabet[v & 31];
    v >>= 5;
  }
}

int Decode1(char c) {
  c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (c == '0') c = 'O';
  if (c == '1') c = 'I';
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= '2' && c <= '7') return 26 + (c - '2');
  return -1;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

}  // namespace

SecretBuffer PaperKitText(const SecretBuffer& master, const std::string& host) {
  std::string head = std::string(kHeader) + "\nhost: " + host + "\nkey id: " + KeyIdOf(master) + "\n";
  // "N: XXXX-XXXX\n" = 13 bytes per line.
  SecretBuffer out(head.size() + kPaperLines * 13);
  std::memcpy(out.data(), head.data(), head.size());
  char* p = reinterpret_cast<char*>(out.data()) + head.size();
  for (int line = 1; line <= kPaperLines; ++line) {
    unsigned char five[5];
    std::memcpy(five, master.uchar() + (line - 1) * kBytesPerLine, kBytesPerLine);
    five[4] = CheckByte(line, five);
    char chars[8];
    Encode5(five, chars);
    sodium_memzero(five, sizeof five);
    p[0] = static_cast<char>('0' + line);
    p[1] = ':';
    p[2] = ' ';
    std::memcpy(p + 3, chars, 4);
    p[7] = '-';
    std::memcpy(p + 8, chars + 4, 4);
    p[12] = '\n';
    sodium_memzero(chars, sizeof chars);
    p += 13;
  }
  return out;
}

Result<PaperKit> ParsePaperKit(std::string_view text) {
  PaperKit kit;
  kit.master = SecretBuffer(KeySet::kKeySize);
  std::array<bool, kPaperLines + 1> seen{};
  bool header = false;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = Trim(text.substr(pos, end - pos));
    pos = end + 1;
    if (line.empty()) continue;
    if (line == kHeader) {
      header = true;
      continue;
    }
    if (line.rfind("host:", 0) == 0) {
      kit.host = std::string(Trim(line.substr(5)));
      continue;
    }
    if (line.rfind("key id:", 0) == 0) {
      kit.key_id = std::string(Trim(line.substr(7)));
      continue;
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0 || colon > 2) {
      return InvalidArgument("the recovery kit has a line that is not \"N: XXXX-XXXX\", \"host:\" "
                             "or \"key id:\": " + std::string(line.substr(0, 40)));
    }
    int n = 0;
    for (char c : line.substr(0, colon)) {
      if (!std::isdigit(static_cast<unsigned char>(c))) n = -1000;
      n = n * 10 + (c - '0');
    }
    if (n < 1 || n > kPaperLines) {
      return InvalidArgument("the recovery kit's lines are numbered 1 to 8, not " +
                             std::string(line.substr(0, colon)));
    }
    unsigned char five[5];
    uint64_t v = 0;
    int count = 0;
    for (char c : line.substr(colon + 1)) {
      if (c == ' ' || c == '-' || c == '\t') continue;
      int d = Decode1(c);
      if (d < 0 || count == 8) {
        return InvalidArgument("line " + std::to_string(n) + " of the recovery kit is not 8 "
                               "base32 characters (A-Z, 2-7): check it on the paper");
      }
      v = (v << 5) | static_cast<uint64_t>(d);
      ++count;
    }
    if (count != 8) {
      return InvalidArgument("line " + std::to_string(n) + " of the recovery kit has " +
                             std::to_string(count) + " characters, not 8: check it on the paper");
    }
    for (int i = 4; i >= 0; --i) {
      five[i] = static_cast<unsigned char>(v & 0xff);
      v >>= 8;
    }
    if (five[4] != CheckByte(n, five)) {
      sodium_memzero(five, sizeof five);
      return InvalidArgument("line " + std::to_string(n) + " of the recovery kit is wrong (its "
                             "check does not match): re-read line " + std::to_string(n) +
                             " from the paper");
    }
    std::memcpy(kit.master.uchar() + (n - 1) * kBytesPerLine, five, kBytesPerLine);
    sodium_memzero(five, sizeof five);
    seen[n] = true;
  }
  if (!header) {
    return InvalidArgument("this is not a sparetime recovery kit (no \"" + std::string(kHeader) +
                           "\" line)");
  }
  for (int n = 1; n <= kPaperLines; ++n) {
    if (!seen[n]) {
      return InvalidArgument("line " + std::to_string(n) + " of the recovery kit is missing");
    }
  }
  if (kit.key_id.empty()) {
    return InvalidArgument("the recovery kit has no \"key id:\" line: copy it from the paper");
  }
  if (KeyIdOf(kit.master) != kit.key_id) {
    return InvalidArgument("every line of the recovery kit passes its check, but together they do "
                           "not make the key " + kit.key_id +
                           " (two errors in one line, or lines from another kit): re-read them");
  }
  return kit;
}

}  // namespace sparetime
