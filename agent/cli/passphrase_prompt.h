// Where the CLI gets passphrases: --passphrase-file, else
// $SPARETIME_PASSPHRASE, else a prompt without echo on the controlling
// terminal (/dev/tty), asked twice when a new passphrase is being set. With
// none of these (no terminal: cron, a pipe) it fails with a message that
// names all three. New passphrases (key add/passwd/import/recover) come from
// --new-passphrase-file, else $SPARETIME_NEW_PASSPHRASE, else the terminal.
//
// Invariants: the passphrase is read straight into a SecretBuffer; echo is
// restored on every path out (including an error); an empty answer or two
// answers that differ are refused, never used.
#ifndef SPARETIME_AGENT_CLI_PASSPHRASE_PROMPT_H_
#define SPARETIME_AGENT_CLI_PASSPHRASE_PROMPT_H_

#include <optional>
#include <string>

#include "sparetime/base/status.h"
#include "sparetime/crypto/secret.h"

namespace sparetime::cli {

struct PassphraseSource {
  std::optional<std::string> file;  // --passphrase-file / --new-passphrase-file
  const char* env = "SPARETIME_PASSPHRASE";
  const char* flag = "--passphrase-file FILE";
  const char* prompt = "Passphrase: ";
  bool confirm = false;  // ask twice on the terminal (a passphrase being set)
};

Result<SecretBuffer> ObtainPassphrase(const PassphraseSource& source);

}  // namespace sparetime::cli

#endif  // SPARETIME_AGENT_CLI_PASSPHRASE_PROMPT_H_
