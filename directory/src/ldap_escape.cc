// Escaping of untrusted values (host names above all) before they go into an
// LDAP search filter (RFC 4515) or a DN (RFC 4514). Every host name that
// reaches a filter or a DN passes through one of these; nothing is pasted raw.
#include <string>
#include <string_view>

#include "sparetime/directory/directory.h"

namespace sparetime::directory {
namespace {

constexpr char kHex[] = "0123456789abcdef";

void AppendHexEscape(std::string& out, unsigned char c) {
  out += '\\';
  out += kHex[c >> 4];
  out += kHex[c & 15];
}

}  // namespace

std::string EscapeFilterValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char ch : value) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '*' || c == '(' || c == ')' || c == '\\' || c == '\0') {
      AppendHexEscape(out, c);
    } else {
      out += ch;
    }
  }
  return out;
}

std::string EscapeDnValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    const auto c = static_cast<unsigned char>(value[i]);
    const bool leading = i == 0 && (c == ' ' || c == '#');
    const bool trailing = i + 1 == value.size() && c == ' ';
    if (c == '\0') {
      AppendHexEscape(out, c);
    } else if (leading || trailing || c == '"' || c == '+' || c == ',' || c == ';' || c == '<' ||
               c == '>' || c == '\\' || c == '=') {
      out += '\\';
      out += value[i];
    } else {
      out += value[i];
    }
  }
  return out;
}

}  // namespace sparetime::directory
