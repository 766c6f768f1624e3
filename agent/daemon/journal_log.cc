// sparetimed's log sink (see journal_log.h).
#include "journal_log.h"

#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

namespace sparetime::daemon {

namespace {

constexpr char kIdent[] = "sparetimed";

bool StderrIsJournal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  if (stream == nullptr) return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(stream, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st;
  if (::fstat(2, &st) != 0) return false;
  return st.st_dev == dev && st.st_ino == ino;
}

}  // namespace

void Log(Priority priority, const std::string& message, const LogFields& fields) {
  static const bool journal = StderrIsJournal();
  if (journal) {
    std::vector<std::string> f = JournalFields(priority, kIdent, message, fields);
    std::vector<struct iovec> iov;
    for (std::string& s : f) iov.push_back({s.data(), s.size()});
    if (sd_journal_sendv(iov.data(), static_cast<int>(iov.size())) == 0) return;
  }
  std::string line = JournalLine(priority, kIdent, message) + "\n";
  std::fputs(line.c_str(), stderr);
}

LogFn JournalLog() {
  return [](Priority p, const std::string& m, const LogFields& f) { Log(p, m, f); };
}

}  // namespace sparetime::daemon
