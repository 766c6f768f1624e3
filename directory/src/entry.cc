// Entry helpers: case-insensitive attribute access and DN normalisation, the
// comparisons every other directory module relies on.
#include "sparetime/directory/entry.h"

#include <algorithm>
#include <cctype>

namespace sparetime::directory {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  // A trailing space escaped as "\ " is part of the value.
  while (!s.empty() && s.back() == ' ' && !(s.size() >= 2 && s[s.size() - 2] == '\\')) {
    s.remove_suffix(1);
  }
  return s;
}

}  // namespace

const std::vector<std::string>& Entry::Values(std::string_view name) const {
  static const std::vector<std::string> kNone;
  auto it = attributes.find(Lower(name));
  return it == attributes.end() ? kNone : it->second;
}

void Entry::Add(std::string_view name, std::string value) {
  attributes[Lower(name)].push_back(std::move(value));
}

bool Entry::HasObjectClass(std::string_view object_class) const {
  const auto& classes = Values("objectClass");
  return std::any_of(classes.begin(), classes.end(),
                     [&](const std::string& c) { return EqualsIgnoreCase(c, object_class); });
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](unsigned char x, unsigned char y) {
           return std::tolower(x) == std::tolower(y);
         });
}

std::string NormalizeDn(std::string_view dn) {
  // Split on unescaped ',' and '+', trim each "type=value", lower-case it.
  std::string out;
  std::string_view rest = dn;
  while (true) {
    size_t cut = 0;
    bool escaped = false;
    for (; cut < rest.size(); ++cut) {
      if (escaped) {
        escaped = false;
      } else if (rest[cut] == '\\') {
        escaped = true;
      } else if (rest[cut] == ',' || rest[cut] == '+') {
        break;
      }
    }
    std::string_view component = Trim(rest.substr(0, cut));
    size_t eq = component.find('=');
    if (eq == std::string_view::npos) {
      out += Lower(component);
    } else {
      out += Lower(Trim(component.substr(0, eq)));
      out += '=';
      out += Lower(Trim(component.substr(eq + 1)));
    }
    if (cut >= rest.size()) break;
    out += rest[cut];
    rest.remove_prefix(cut + 1);
  }
  return out;
}

}  // namespace sparetime::directory
