// `sparetime key ...` (key_commands.h): parse, call ops/keys.h, print.
#include "key_commands.h"

#include <qrencode.h>
#include <sodium.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "exit_codes.h"
#include "open_backups.h"
#include "passphrase_prompt.h"
#include "sparetime/base/fd.h"
#include "sparetime/ops/keys.h"

namespace sparetime::cli {

struct KeyCommands::Options {
  CLI::App* key = nullptr;
  CLI::App* list = nullptr;
  CLI::App* add = nullptr;
  CLI::App* remove = nullptr;
  CLI::App* passwd = nullptr;
  CLI::App* export_cmd = nullptr;
  CLI::App* import_cmd = nullptr;
  CLI::App* recover = nullptr;
  CLI::App* keygen = nullptr;
  std::string label;
  std::string new_passphrase_file;
  std::string kdf = "moderate";
  uint32_t slot = 0;
  bool paper = false;
  bool qr = false;
  std::string kit_file = "-";
  std::string escrow_key;
  std::string keygen_file;
  std::string host;  // --host: another agent's key (list, recover)
};

namespace {

KdfLimits LimitsOf(const std::string& kdf) {
  return kdf == "min"           ? KdfLimits::FastForTests()
         : kdf == "interactive" ? KdfLimits::Interactive()
                                : KdfLimits::Moderate();
}

Result<SecretBuffer> NewPassphrase(const KeyCommands::Options& o) {
  PassphraseSource s;
  if (!o.new_passphrase_file.empty()) s.file = o.new_passphrase_file;
  s.env = "SPARETIME_NEW_PASSPHRASE";
  s.flag = "--new-passphrase-file FILE";
  s.prompt = "New passphrase: ";
  s.confirm = true;
  return ObtainPassphrase(s);
}

Result<SecretBuffer> CurrentPassphrase(const GlobalOptions& g) {
  return ObtainPassphrase({.file = g.passphrase_file});
}

std::string TimeText(int64_t t) {
  if (t == 0) return "-";
  char buf[32];
  time_t tt = static_cast<time_t>(t);
  struct tm tm;
  gmtime_r(&tt, &tm);
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", &tm);
  return buf;
}

// The QR code of `text` in half blocks (two rows per line), quiet zone 2.
std::string QrText(const SecretBuffer& text) {
  std::string data(reinterpret_cast<const char*>(text.data()), text.size());
  QRcode* qr = QRcode_encodeString8bit(data.c_str(), 0, QR_ECLEVEL_M);
  sodium_memzero(data.data(), data.size());
  if (qr == nullptr) return "";
  const int w = qr->width, q = 2, n = w + 2 * q;
  auto dark = [&](int x, int y) {
    x -= q;
    y -= q;
    return x >= 0 && y >= 0 && x < w && y < w && (qr->data[y * w + x] & 1);
  };
  std::string out;
  for (int y = 0; y < n; y += 2) {
    for (int x = 0; x < n; ++x) {
      bool top = dark(x, y), bottom = y + 1 < n && dark(x, y + 1);
      // Light modules are printed (white on a dark terminal is the usual case).
      out += !top && !bottom ? "█" : !top ? "▀" : !bottom ? "▄" : " ";
    }
    out += "\n";
  }
  sodium_memzero(qr->data, static_cast<size_t>(w) * w);
  QRcode_free(qr);
  return out;
}

int List(const GlobalOptions& g) {
  int rc = kExitOk;
  Result<BackupsTarget> t = TargetOf(g, &rc);
  if (!t.ok()) return rc;
  Result<ops::KeyListing> l = ops::ListKeys(t->options);
  if (!l.ok()) return Fail(l.status(), Stage::kOpenRepository);
  if (g.json) {
    nlohmann::ordered_json j;
    j["host"] = l->host;
    j["key_id"] = l->key_id;
    j["version"] = l->version;
    j["slots"] = nlohmann::json::array();
    for (const auto& s : l->slots) {
      j["slots"].push_back({{"id", s.id}, {"label", s.label}, {"created", s.created},
                            {"opslimit", s.opslimit}, {"memlimit", s.memlimit}});
    }
    j["escrow_public_key"] = l->escrow_public_key ? nlohmann::json(*l->escrow_public_key) : nullptr;
    std::printf("%s\n", j.dump(2).c_str());
    return kExitOk;
  }
  std::printf("key %s of %s (key file version %d)\n", l->key_id.empty() ? "-" : l->key_id.c_str(),
              l->host.c_str(), l->version);
  std::printf("%-4s %-20s %-8s %-10s %s\n", "ID", "CREATED", "OPS", "MEMORY", "LABEL");
  for (const auto& s : l->slots) {
    std::printf("%-4u %-20s %-8llu %-10s %s\n", s.id, TimeText(s.created).c_str(),
                static_cast<unsigned long long>(s.opslimit),
                (std::to_string(s.memlimit >> 20) + " MiB").c_str(), s.label.c_str());
  }
  std::printf("escrow: %s\n",
              l->escrow_public_key ? l->escrow_public_key->c_str() : "none (no way in but the slots)");
  return kExitOk;
}

}  // namespace

KeyCommands::KeyCommands(CLI::App& app) : o_(std::make_unique<Options>()) {
  Options& o = *o_;
  o.key = app.add_subcommand("key", "passphrase slots, escrow and the paper recovery kit");
  o.key->require_subcommand(1);
  auto kdf = [&o](CLI::App* c) {
    c->add_option("--kdf", o.kdf, "Argon2id cost of the new slot: moderate (default), "
                                  "interactive, min")
        ->check(CLI::IsMember({"moderate", "interactive", "min"}));
    c->add_option("--new-passphrase-file", o.new_passphrase_file,
                  "the new passphrase (mode 0600); else $SPARETIME_NEW_PASSPHRASE, else asked "
                  "twice on the terminal");
  };
  o.list = o.key->add_subcommand("list", "show the passphrase slots and the escrow key");
  o.add = o.key->add_subcommand("add", "add a passphrase slot");
  o.add->add_option("--label", o.label, "what or who this passphrase is for (≤ 64 bytes)");
  kdf(o.add);
  o.remove = o.key->add_subcommand("remove", "remove a passphrase slot");
  o.remove->add_option("ID", o.slot, "the slot's id (`sparetime key list`)")->required();
  o.passwd = o.key->add_subcommand("passwd", "change the passphrase (rewraps the key only)");
  kdf(o.passwd);
  o.export_cmd = o.key->add_subcommand("export", "print the paper recovery kit");
  o.export_cmd->add_flag("--paper", o.paper, "the kit as 8 checked lines of base32")->required();
  o.export_cmd->add_flag("--qr", o.qr, "also print it as a QR code (default: when on a terminal)");
  o.import_cmd = o.key->add_subcommand("import", "add a passphrase slot from a paper kit");
  o.import_cmd->add_option("FILE", o.kit_file, "the kit as typed back (default -: stdin)");
  kdf(o.import_cmd);
  o.recover = o.key->add_subcommand(
      "recover", "open the key with the organisation's escrow key (--host H: another box's)");
  o.recover->add_option("--escrow-key", o.escrow_key, "the escrow secret key file")->required();
  o.recover->add_option("--host", o.host,
                        "another agent's key, read from the peers (prints its recovery kit)");
  o.list->add_option("--host", o.host, "another agent's key file, read from the peers");
  kdf(o.recover);
  o.keygen = o.key->add_subcommand("escrow-keygen", "make the organisation's escrow key pair");
  o.keygen->add_option("FILE", o.keygen_file, "where the secret key goes (new file, mode 0600)")
      ->required();
}

KeyCommands::~KeyCommands() = default;

std::optional<int> KeyCommands::Run(const GlobalOptions& global) {
  Options& o = *o_;
  if (!*o.key) return std::nullopt;
  GlobalOptions g = global;
  if (!o.host.empty()) g.host = o.host;
  if (*o.keygen) {
    Result<std::string> pk = ops::EscrowKeygen(o.keygen_file);
    if (!pk.ok()) return Fail(pk.status(), Stage::kWork);
    if (!g.quiet) {
      std::fprintf(stderr, "secret key written to %s: keep it offline; whoever holds it can open "
                           "every box's backups sealed to it\n", o.keygen_file.c_str());
    }
    std::printf("sparetimeEscrowPublicKey: %s\n", pk->c_str());
    return kExitOk;
  }
  if (*o.list) return List(g);
  int rc = kExitOk;
  Result<BackupsTarget> t = TargetOf(g, &rc);
  if (!t.ok()) return rc;
  const KdfLimits limits = LimitsOf(o.kdf);
  if (*o.recover) {
    Result<SecretBuffer> secret = ops::ReadEscrowSecretKey(o.escrow_key);
    if (!secret.ok()) return Fail(secret.status(), Stage::kWork);
    std::optional<SecretBuffer> np;
    if (g.host.empty()) {
      Result<SecretBuffer> p = NewPassphrase(o);
      if (!p.ok()) return Fail(p.status(), Stage::kWork);
      np = std::move(*p);
    }
    Result<ops::EscrowRecovery> r =
        ops::RecoverWithEscrow(t->options, *secret, np ? &*np : nullptr, limits);
    if (!r.ok()) return Fail(r.status(), Stage::kWork);
    if (r->slot) {
      if (!g.quiet) std::printf("key %s of %s recovered: new passphrase in slot %u\n",
                                r->key_id.c_str(), r->host.c_str(), *r->slot);
    } else {
      std::fwrite(r->paper_kit.data(), 1, r->paper_kit.size(), stdout);
      if (!g.quiet) {
        std::fprintf(stderr, "this is the recovery kit of %s: on %s, run `sparetime key import` "
                             "with it to set a new passphrase\n", r->host.c_str(), r->host.c_str());
      }
    }
    return kExitOk;
  }
  if (*o.import_cmd) {
    Result<std::string> text = std::string();
    if (o.kit_file == "-") {
      text = std::string(std::istreambuf_iterator<char>(std::cin), {});
    } else {
      text = ReadFileToString(o.kit_file);
    }
    if (!text.ok()) return Fail(text.status(), Stage::kWork);
    Result<SecretBuffer> np = NewPassphrase(o);
    if (!np.ok()) return Fail(np.status(), Stage::kWork);
    Result<uint32_t> id = ops::ImportPaperKit(t->options, *text, *np, limits);
    sodium_memzero(text->data(), text->size());
    if (!id.ok()) return Fail(id.status(), Stage::kWork);
    if (!g.quiet) std::printf("recovery kit imported: new passphrase in slot %u\n", *id);
    return kExitOk;
  }
  Result<SecretBuffer> passphrase = CurrentPassphrase(g);
  if (!passphrase.ok()) return Fail(passphrase.status(), Stage::kOpenRepository);
  if (*o.export_cmd) {
    Result<SecretBuffer> kit = ops::ExportPaperKit(t->options, *passphrase);
    if (!kit.ok()) return Fail(kit.status(), Stage::kOpenRepository);
    std::fwrite(kit->data(), 1, kit->size(), stdout);
    if (o.qr || ::isatty(STDOUT_FILENO)) std::printf("\n%s", QrText(*kit).c_str());
    return kExitOk;
  }
  if (*o.remove) {
    Status st = ops::RemoveKey(t->options, *passphrase, o.slot);
    if (!st.ok()) return Fail(st, Stage::kWork);
    if (!g.quiet) std::printf("slot %u removed\n", o.slot);
    return kExitOk;
  }
  Result<SecretBuffer> np = NewPassphrase(o);
  if (!np.ok()) return Fail(np.status(), Stage::kWork);
  if (*o.add) {
    Result<uint32_t> id = ops::AddKey(t->options, *passphrase, *np, limits, o.label);
    if (!id.ok()) return Fail(id.status(), Stage::kWork);
    if (!g.quiet) std::printf("slot %u added\n", *id);
    return kExitOk;
  }
  if (*o.passwd) {
    Result<uint32_t> id = ops::ChangePassphrase(t->options, *passphrase, *np, limits);
    if (!id.ok()) return Fail(id.status(), Stage::kWork);
    if (!g.quiet) std::printf("passphrase changed (now slot %u)\n", *id);
    return kExitOk;
  }
  return kExitUsage;
}

}  // namespace sparetime::cli
