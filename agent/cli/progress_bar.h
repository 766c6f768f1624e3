// ProgressBar: a one-line progress display on stderr (bytes done, percent,
// MB/s, ETA), redrawn in place. Silent unless stderr is a terminal and the
// output is for people (not --json / --quiet).
#ifndef SPARETIME_AGENT_CLI_PROGRESS_BAR_H_
#define SPARETIME_AGENT_CLI_PROGRESS_BAR_H_

#include <chrono>
#include <string>

#include "sparetime/imaging/imager.h"

namespace sparetime::cli {

class ProgressBar {
 public:
  ProgressBar(std::string verb, bool enabled);
  ~ProgressBar();  // ends the line
  // A ProgressFn that draws this bar (empty when disabled).
  ProgressFn Callback();

 private:
  void Draw(const ProgressInfo& info);
  std::string verb_;
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace sparetime::cli

#endif  // SPARETIME_AGENT_CLI_PROGRESS_BAR_H_
