// `sparetime key ...`: passphrase slots, escrow and the paper recovery kit
// (docs/cli.md "key"). Each subcommand parses, calls one use case in
// agent/ops (ops/keys.h) and prints its result.
//
//   key list                          slots, their Argon2id costs, escrow key
//   key add [--label L]               a new passphrase slot
//   key remove ID                     (refused for the last slot without escrow)
//   key passwd                        replace the slot the passphrase opens
//   key export --paper [--qr]         the paper recovery kit (+ QR code)
//   key import [FILE]                 a new slot from a paper kit (stdin: -)
//   key recover --escrow-key FILE     the admin's way in (--host H: another box)
//   key escrow-keygen FILE            the admin's escrow key pair
#ifndef SPARETIME_AGENT_CLI_KEY_COMMANDS_H_
#define SPARETIME_AGENT_CLI_KEY_COMMANDS_H_

#include <CLI/CLI.hpp>
#include <memory>
#include <optional>

#include "commands.h"

namespace sparetime::cli {

class KeyCommands {
 public:
  explicit KeyCommands(CLI::App& app);
  ~KeyCommands();
  std::optional<int> Run(const GlobalOptions& g);

  struct Options;

 private:
  std::unique_ptr<Options> o_;
};

}  // namespace sparetime::cli

#endif  // SPARETIME_AGENT_CLI_KEY_COMMANDS_H_
