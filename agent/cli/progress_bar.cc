// ProgressBar drawing.
#include "progress_bar.h"

#include "format.h"

#include <unistd.h>

#include <cstdio>

namespace sparetime::cli {

ProgressBar::ProgressBar(std::string verb, bool enabled)
    : verb_(std::move(verb)),
      enabled_(enabled && ::isatty(STDERR_FILENO)),
      start_(std::chrono::steady_clock::now()) {}

ProgressBar::~ProgressBar() {
  if (drawn_) std::fputs("\n", stderr);
}

ProgressFn ProgressBar::Callback() {
  if (!enabled_) return {};
  return [this](const ProgressInfo& info) { Draw(info); };
}

void ProgressBar::Draw(const ProgressInfo& info) {
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double rate = secs > 0 ? static_cast<double>(info.bytes_done) / secs : 0;
  double pct = info.bytes_total ? 100.0 * static_cast<double>(info.bytes_done) /
                                      static_cast<double>(info.bytes_total)
                                : 100.0;
  std::string eta = "--:--";
  if (rate > 0 && info.bytes_total >= info.bytes_done) {
    auto left = static_cast<long>(static_cast<double>(info.bytes_total - info.bytes_done) / rate);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%ld:%02ld", left / 60, left % 60);
    eta = buf;
  }
  std::fprintf(stderr, "\r%s %s / %s  %5.1f%%  %.1f MB/s  ETA %s   ", verb_.c_str(),
               HumanBytes(info.bytes_done).c_str(), HumanBytes(info.bytes_total).c_str(), pct,
               rate / 1e6, eta.c_str());
  std::fflush(stderr);
  drawn_ = true;
}

}  // namespace sparetime::cli
