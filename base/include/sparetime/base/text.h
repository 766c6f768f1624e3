// Small text helpers shared by the /proc readers (scheduler sensors, the
// migration engine).
#ifndef SPARETIME_BASE_TEXT_H_
#define SPARETIME_BASE_TEXT_H_

#include <string_view>
#include <vector>

namespace sparetime {

// The lines of `text` without their '\n'; a final line without one counts,
// a trailing '\n' adds no empty line.
std::vector<std::string_view> SplitLines(std::string_view text);

}  // namespace sparetime

#endif  // SPARETIME_BASE_TEXT_H_
