// The paper recovery kit: a master key written as 8 lines of base32, each
// line carrying its own check byte, plus the host name and key id, so a
// person can type it back (`sparetime key import`) and be told which line
// is wrong. Layout and test vector: docs/formats.md ("Paper recovery kit").
//
//   line i (1..8) = base32(master[4(i-1) .. 4i) || check_i), 8 characters
//   check_i       = BLAKE2b-8 (unkeyed, 1-byte output) of
//                   "sparetime paper v1" || i || master[4(i-1) .. 4i)
//   whole key     = key id (key_file.h), checked after all lines pass
//
// Invariants: the master key only ever sits in a SecretBuffer (the kit text
// is one too: it is the key); a kit whose lines pass but whose key id does
// not match is refused; a line with a bad check is named by its number.
#ifndef SPARETIME_IMAGING_PAPER_KEY_H_
#define SPARETIME_IMAGING_PAPER_KEY_H_

#include <string>

#include "sparetime/base/status.h"
#include "sparetime/crypto/secret.h"

namespace sparetime {

inline constexpr int kPaperLines = 8;

// The kit as text ("sparetime recovery kit v1", host, key id, 8 lines),
// ending in a newline. REQUIRES: a 32-byte master key.
SecretBuffer PaperKitText(const SecretBuffer& master, const std::string& host);

struct PaperKit {
  std::string host;
  std::string key_id;
  SecretBuffer master;
};

// Parses a kit typed back: case, spaces and dashes inside a line do not
// matter, and since base32 has no 0 or 1 a typed 0 reads as O and 1 as I.
// kInvalidArgument naming the line whose check fails, a missing line, or a
// key id that does not match.
Result<PaperKit> ParsePaperKit(std::string_view text);

}  // namespace sparetime

#endif  // SPARETIME_IMAGING_PAPER_KEY_H_
