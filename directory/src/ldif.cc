// LDIF parsing and writing (see ldif.h). The parser walks physical lines,
// groups them into blank-line separated records, unfolds continuation lines
// and keeps each record's exact text and the comments before it.
#include "ldif.h"

#include <algorithm>
#include <cctype>
#include <map>

#include "values.h"

namespace sparetime::directory {
namespace {

struct LogicalLine {
  std::string text;  // unfolded, without the line end
  int number = 0;    // physical line it starts on
  size_t begin = 0;  // offset of that physical line
  bool comment = false;
};

bool IsBlank(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == ' ' || c == '\t'; });
}

std::string Excerpt(std::string_view s) {
  return "\"" + std::string(s.substr(0, 60)) + (s.size() > 60 ? "...\"" : "\"");
}

bool StartsWithBlankLine(std::string_view text) {
  size_t nl = text.find('\n');
  if (nl == std::string_view::npos) return false;
  std::string_view line = text.substr(0, nl);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return IsBlank(line);
}

// Values that can be written as "attr: value" (RFC 2849 SAFE-STRING, and no
// trailing space, which readers may strip).
bool IsSafe(std::string_view v) {
  if (v.empty()) return true;
  if (v.front() == ' ' || v.front() == ':' || v.front() == '<' || v.back() == ' ') return false;
  return std::all_of(v.begin(), v.end(), [](unsigned char c) {
    return c != 0 && c != '\r' && c != '\n' && c < 128;
  });
}

void AppendLine(std::string& out, std::string_view name, std::string_view value) {
  out += name;
  if (value.empty()) {
    out += ":\n";
  } else if (IsSafe(value)) {
    out += ": " + std::string(value) + "\n";
  } else {
    out += ":: " + EncodeBase64(value) + "\n";
  }
}

class Parser {
 public:
  Parser(std::string_view text, const std::string& path) : text_(text), path_(path) {}

  Result<LdifDocument> Run() {
    bool in_record = false, after_comment = false;
    size_t record_begin = 0;
    std::vector<LogicalLine> lines;
    size_t pos = 0;
    for (int number = 1; pos < text_.size(); ++number) {
      size_t nl = text_.find('\n', pos);
      size_t next = nl == std::string_view::npos ? text_.size() : nl + 1;
      std::string_view line = text_.substr(pos, (nl == std::string_view::npos ? text_.size() : nl) - pos);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (IsBlank(line)) {
        if (in_record) ST_RETURN_IF_ERROR(FinishRecord(record_begin, pos, lines));
        in_record = after_comment = false;
      } else if (line.front() == ' ') {
        if (in_record) {
          lines.back().text += line.substr(1);
        } else if (!after_comment) {
          return Error(number, "a continuation line (starting with a space) with no line to continue");
        }
      } else if (line.front() == '#') {
        if (in_record) lines.push_back({std::string(line), number, pos, true});
        after_comment = true;
      } else {
        if (!in_record) {
          in_record = true;
          record_begin = pos;
          lines.clear();
        }
        lines.push_back({std::string(line), number, pos, false});
      }
      pos = next;
    }
    if (in_record) ST_RETURN_IF_ERROR(FinishRecord(record_begin, text_.size(), lines));
    doc_.trailer = std::string(text_.substr(pending_));
    return std::move(doc_);
  }

 private:
  Status Error(int line, const std::string& what) const {
    return InvalidArgument(path_ + ":" + std::to_string(line) + ": " + what);
  }

  // "name: value", "name:: base64" -> (name, decoded value).
  Result<std::pair<std::string, std::string>> ParseLine(const LogicalLine& l) const {
    size_t colon = l.text.find(':');
    std::string_view name = std::string_view(l.text).substr(0, colon);
    bool name_ok = colon != std::string::npos && colon > 0 &&
                   std::all_of(name.begin(), name.end(), [](unsigned char c) {
                     return std::isalnum(c) || c == '-' || c == ';' || c == '.';
                   });
    if (!name_ok) {
      return Error(l.number, "expected \"attribute: value\", found " + Excerpt(l.text));
    }
    std::string_view rest = std::string_view(l.text).substr(colon + 1);
    if (!rest.empty() && rest.front() == '<') {
      return Error(l.number, "URL values (\"" + std::string(name) +
                                 ":< ...\") are not supported; put the value in the file");
    }
    bool base64 = !rest.empty() && rest.front() == ':';
    if (base64) rest.remove_prefix(1);
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    if (!base64) return std::make_pair(std::string(name), std::string(rest));
    while (!rest.empty() && rest.back() == ' ') rest.remove_suffix(1);
    Result<std::string> value = DecodeBase64(rest);
    if (!value.ok()) {
      return Error(l.number, "the value of \"" + std::string(name) + "::\" is " +
                                 value.status().message());
    }
    return std::make_pair(std::string(name), std::move(*value));
  }

  Status FinishRecord(size_t begin, size_t end, const std::vector<LogicalLine>& all) {
    std::vector<const LogicalLine*> lines;
    for (const LogicalLine& l : all) {
      if (!l.comment) lines.push_back(&l);
    }
    size_t first = 0;
    ST_ASSIGN_OR_RETURN(auto head, ParseLine(*lines[0]));
    if (EqualsIgnoreCase(head.first, "version")) {
      if (!doc_.records.empty() || seen_version_) {
        return Error(lines[0]->number, "\"version:\" is only allowed at the top of the file");
      }
      if (head.second != "1") {
        return Error(lines[0]->number, "LDIF version " + Excerpt(head.second) +
                                           " is not supported; write \"version: 1\"");
      }
      seen_version_ = true;
      if (lines.size() == 1) return Status::Ok();  // the version line stays in the next preamble
      first = 1;
      begin = lines[1]->begin;
      ST_ASSIGN_OR_RETURN(head, ParseLine(*lines[1]));
    }
    if (!EqualsIgnoreCase(head.first, "dn")) {
      return Error(lines[first]->number,
                   "a record must start with \"dn:\", found " + Excerpt(lines[first]->text));
    }
    if (head.second.empty()) return Error(lines[first]->number, "empty DN; name the entry");
    LdifRecord record;
    record.dn = head.second;
    record.line = lines[first]->number;
    for (size_t i = first + 1; i < lines.size(); ++i) {
      ST_ASSIGN_OR_RETURN(auto attr, ParseLine(*lines[i]));
      if (EqualsIgnoreCase(attr.first, "changetype")) {
        if (EqualsIgnoreCase(attr.second, "add")) continue;
        return Error(lines[i]->number, "change records (changetype: " + attr.second +
                                           ") are not supported; write each entry in full");
      }
      if (EqualsIgnoreCase(attr.first, "dn")) {
        return Error(lines[i]->number, "a second \"dn:\" in one record; separate entries by a blank line");
      }
      record.attributes.push_back(std::move(attr));
    }
    auto [it, inserted] = first_line_.emplace(NormalizeDn(record.dn), record.line);
    if (!inserted) {
      return Error(record.line, "entry " + Excerpt(record.dn) + " appears again (first at line " +
                                    std::to_string(it->second) + "); keep one");
    }
    record.preamble = std::string(text_.substr(pending_, begin - pending_));
    record.raw = std::string(text_.substr(begin, end - begin));
    pending_ = end;
    doc_.records.push_back(std::move(record));
    return Status::Ok();
  }

  std::string_view text_;
  const std::string& path_;
  LdifDocument doc_;
  size_t pending_ = 0;  // start of the text not yet given to a record
  bool seen_version_ = false;
  std::map<std::string, int> first_line_;  // normalised DN -> line
};

}  // namespace

Entry LdifRecord::ToEntry() const {
  Entry e;
  e.dn = dn;
  for (const auto& [name, value] : attributes) e.Add(name, value);
  return e;
}

void LdifRecord::SetValues(std::string_view name, const std::vector<std::string>& values) {
  auto same = [&](const auto& a) { return EqualsIgnoreCase(a.first, name); };
  auto at = std::find_if(attributes.begin(), attributes.end(), same);
  size_t index = static_cast<size_t>(at - attributes.begin());
  attributes.erase(std::remove_if(attributes.begin(), attributes.end(), same), attributes.end());
  index = std::min(index, attributes.size());
  for (const std::string& v : values) {
    attributes.insert(attributes.begin() + static_cast<ptrdiff_t>(index++), {std::string(name), v});
  }
  raw.clear();
}

Result<LdifDocument> ParseLdif(std::string_view text, const std::string& path) {
  return Parser(text, path).Run();
}

std::string SerializeLdif(const LdifDocument& doc) {
  std::string out;
  for (const LdifRecord& r : doc.records) {
    // Records are separated by a blank line; a parsed record's preamble
    // already starts with it.
    bool separated = out.empty() || out.ends_with("\n\n") ||
                     (out.ends_with("\n") && StartsWithBlankLine(r.preamble));
    if (!separated) out += out.ends_with("\n") ? "\n" : "\n\n";
    out += r.preamble;
    if (!r.raw.empty()) {
      out += r.raw;
      continue;
    }
    AppendLine(out, "dn", r.dn);
    for (const auto& [name, value] : r.attributes) AppendLine(out, name, value);
  }
  if (!doc.trailer.empty() && !out.empty() && !out.ends_with("\n")) out += "\n";
  out += doc.trailer;
  return out;
}

}  // namespace sparetime::directory
