// `sparetime key ...` and the passphrase prompt through the real binary:
// slots (add, list, passwd, remove), the paper kit round trip and a kit
// with one wrong character, the escrow key pair, the refusal of the last
// slot, no passphrase and no terminal, and the no-echo prompt on a real
// pseudo-terminal (asked twice at init; two different answers refused).
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "sparetime/base/fd.h"
#include "testutil/cli_runner.h"
#include "testutil/testutil.h"

namespace sparetime::testing {
namespace {

// `sparetime --repo REPO args` with the given environment prefix.
CommandResult Cli(const std::string& repo, const std::string& env, const std::string& args) {
  return RunCommand(env + " exec " + std::string(SPARETIME_CLI) + " --repo " + ShellQuote(repo) +
                    " " + args);
}

TEST(CliKeys, SlotsPasswdPaperKitAndTheLastSlot) {
  TempDir tmp;
  const std::string repo = tmp / "repo";
  CliRunner cli(repo, "one");
  cli.Init();
  CommandResult add = Cli(repo, "SPARETIME_PASSPHRASE=one SPARETIME_NEW_PASSPHRASE=two",
                          "key add --kdf min --label laptop");
  ASSERT_EQ(add.exit_code, 0) << add.err;
  EXPECT_EQ(add.out, "slot 2 added\n");
  CommandResult list = Cli(repo, "", "--json key list");
  ASSERT_EQ(list.exit_code, 0) << list.err;
  nlohmann::json j = nlohmann::json::parse(list.out);
  ASSERT_EQ(j["slots"].size(), 2u);
  EXPECT_EQ(j["slots"][1]["label"], "laptop");
  EXPECT_EQ(j["slots"][1]["opslimit"], 1);
  EXPECT_EQ(j["version"], 2);
  EXPECT_TRUE(j["escrow_public_key"].is_null());

  CommandResult passwd = Cli(repo, "SPARETIME_PASSPHRASE=two SPARETIME_NEW_PASSPHRASE=three",
                             "key passwd --kdf min");
  ASSERT_EQ(passwd.exit_code, 0) << passwd.err;
  EXPECT_EQ(Cli(repo, "SPARETIME_PASSPHRASE=three", "--key-cache 0 snapshots").exit_code, 0);
  CommandResult old = Cli(repo, "SPARETIME_PASSPHRASE=two", "--key-cache 0 snapshots");
  EXPECT_EQ(old.exit_code, 3) << old.err;  // wrong passphrase

  // Paper kit: export, forget every passphrase but one, import.
  CommandResult kit = Cli(repo, "SPARETIME_PASSPHRASE=one", "key export --paper");
  ASSERT_EQ(kit.exit_code, 0) << kit.err;
  EXPECT_EQ(kit.out.rfind("sparetime recovery kit v1\nhost: ", 0), 0u) << kit.out;
  EXPECT_EQ(kit.out.find("█"), std::string::npos) << "no QR code when stdout is not a terminal";
  CommandResult with_qr = Cli(repo, "SPARETIME_PASSPHRASE=one", "key export --paper --qr");
  ASSERT_EQ(with_qr.exit_code, 0);
  EXPECT_EQ(with_qr.out.rfind(kit.out, 0), 0u);
  EXPECT_NE(with_qr.out.find("█"), std::string::npos);
  WriteFileOrDie(tmp / "kit.txt", std::vector<std::byte>(
      reinterpret_cast<const std::byte*>(kit.out.data()),
      reinterpret_cast<const std::byte*>(kit.out.data()) + kit.out.size()));
  std::string typo = kit.out;
  size_t at = typo.find("7: ") + 4;
  typo[at] = typo[at] == 'Q' ? 'R' : 'Q';
  WriteFileOrDie(tmp / "typo.txt", std::vector<std::byte>(
      reinterpret_cast<const std::byte*>(typo.data()),
      reinterpret_cast<const std::byte*>(typo.data()) + typo.size()));
  CommandResult bad = Cli(repo, "SPARETIME_NEW_PASSPHRASE=four", "key import --kdf min " +
                                                                     ShellQuote(tmp / "typo.txt"));
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_NE(bad.err.find("line 7 of the recovery kit is wrong"), std::string::npos) << bad.err;
  CommandResult imported = Cli(repo, "SPARETIME_NEW_PASSPHRASE=four",
                               "key import --kdf min < " + ShellQuote(tmp / "kit.txt"));
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  EXPECT_EQ(imported.out, "recovery kit imported: new passphrase in slot 4\n");
  EXPECT_EQ(Cli(repo, "SPARETIME_PASSPHRASE=four", "--key-cache 0 snapshots").exit_code, 0);

  // Remove down to one slot; the last one is refused.
  for (const char* id : {"1", "3"}) {
    CommandResult r = Cli(repo, "SPARETIME_PASSPHRASE=four", std::string("key remove ") + id);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  CommandResult last = Cli(repo, "SPARETIME_PASSPHRASE=four", "key remove 4");
  EXPECT_NE(last.exit_code, 0);
  EXPECT_NE(last.err.find("last way into these backups"), std::string::npos) << last.err;
  EXPECT_EQ(Cli(repo, "SPARETIME_PASSPHRASE=four", "--key-cache 0 snapshots").exit_code, 0);
}

TEST(CliKeys, EscrowKeygenWritesASecretFileAndPrintsTheDirectorysSpelling) {
  TempDir tmp;
  const std::string file = tmp / "escrow.key";
  CommandResult r = RunCommand(std::string(SPARETIME_CLI) + " key escrow-keygen " + ShellQuote(file));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(r.out.rfind("sparetimeEscrowPublicKey: ", 0), 0u) << r.out;
  EXPECT_EQ(r.out.size(), std::string("sparetimeEscrowPublicKey: ").size() + 44 + 1);
  struct stat st;
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  CommandResult again = RunCommand(std::string(SPARETIME_CLI) + " key escrow-keygen " + ShellQuote(file));
  EXPECT_NE(again.exit_code, 0);
  EXPECT_NE(again.err.find("never overwritten"), std::string::npos) << again.err;
}

TEST(CliKeys, NoPassphraseAndNoTerminalFailsClearly) {
  TempDir tmp;
  CliRunner cli(tmp / "repo", "one");
  cli.Init();
  // setsid: no controlling terminal, as under cron.
  CommandResult r = RunCommand("env -u SPARETIME_PASSPHRASE setsid -w " + std::string(SPARETIME_CLI) +
                               " --repo " + ShellQuote(tmp / "repo") + " snapshots </dev/null");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("no passphrase given and no terminal to ask on: set SPARETIME_PASSPHRASE, "
                       "pass --passphrase-file FILE"),
            std::string::npos)
      << r.err;
}

// Runs the CLI on a new pseudo-terminal, answering each prompt in turn.
struct PtyRun {
  int exit_code = -1;
  std::string screen;  // everything the terminal showed
};

PtyRun OnTerminal(const std::string& args, const std::vector<std::string>& answers) {
  PtyRun out;
  int master = -1;
  pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
  if (pid == 0) {
    ::unsetenv("SPARETIME_PASSPHRASE");
    ::execl("/bin/sh", "sh", "-c", (std::string("exec ") + SPARETIME_CLI + " " + args).c_str(),
            static_cast<char*>(nullptr));
    _exit(127);
  }
  size_t next = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    struct pollfd p {master, POLLIN, 0};
    if (::poll(&p, 1, 200) > 0) {
      char buf[512];
      ssize_t n = ::read(master, buf, sizeof buf);
      if (n <= 0) break;  // EIO: the child closed the terminal
      out.screen.append(buf, static_cast<size_t>(n));
    }
    // Answer a prompt once it is on the screen (and echo is off by then:
    // the CLI turns it off before reading).
    const std::string& s = out.screen;
    size_t prompts = 0;
    for (size_t at = s.find(": "); at != std::string::npos; at = s.find(": ", at + 2)) {
      const std::string before = s.substr(0, at);
      if (before.size() >= 10 && (before.ends_with("passphrase") || before.ends_with("Passphrase") ||
                                  before.ends_with("Repeat it"))) {
        ++prompts;
      }
    }
    if (next < answers.size() && prompts > next) {
      ::usleep(100000);  // let the CLI switch echo off after printing
      std::string line = answers[next++] + "\n";
      EXPECT_EQ(::write(master, line.data(), line.size()), static_cast<ssize_t>(line.size()));
    }
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(master);
  out.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

TEST(CliKeys, PromptsWithoutEchoOnATerminal) {
  TempDir tmp;
  const std::string repo = "--repo " + ShellQuote(tmp / "repo") + " --key-cache 0 ";
  PtyRun init = OnTerminal(repo + "init --kdf min", {"s3cret-words", "s3cret-words"});
  ASSERT_EQ(init.exit_code, 0) << init.screen;
  EXPECT_NE(init.screen.find("New passphrase: "), std::string::npos) << init.screen;
  EXPECT_NE(init.screen.find("Repeat it: "), std::string::npos) << init.screen;
  EXPECT_EQ(init.screen.find("s3cret-words"), std::string::npos) << "echoed: " << init.screen;
  PtyRun snaps = OnTerminal(repo + "snapshots", {"s3cret-words"});
  EXPECT_EQ(snaps.exit_code, 0) << snaps.screen;
  EXPECT_EQ(snaps.screen.find("Repeat it"), std::string::npos) << "asked once to unlock";
  PtyRun wrong = OnTerminal(repo + "snapshots", {"not it"});
  EXPECT_EQ(wrong.exit_code, 3) << wrong.screen;
  PtyRun differ = OnTerminal("--repo " + ShellQuote(tmp / "other") + " init --kdf min",
                             {"first", "second"});
  EXPECT_EQ(differ.exit_code, 2) << differ.screen;
  EXPECT_NE(differ.screen.find("the two passphrases differ"), std::string::npos) << differ.screen;
  struct stat st;
  EXPECT_NE(::stat((tmp / "other").c_str(), &st), 0) << "nothing created";
}

}  // namespace
}  // namespace sparetime::testing
