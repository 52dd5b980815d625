#include "usched/config.h"

#include <map>
#include <set>

#include "usched/names.h"

namespace usched {
namespace {

const std::set<std::string>& line_keywords() {
  static const std::set<std::string> k = {"vcpus", "lwktpri", "class", "locked",
                                          "unlocked", "exclusive", "shared", "isolated"};
  return k;
}

std::string pool_words(const std::vector<std::string>& words) {
  size_t i = 0;
  while (i < words.size() && words[i] != "on") ++i;
  std::string pool;
  for (++i; i < words.size() && !line_keywords().count(words[i]); ++i) {
    if (!pool.empty()) pool += ' ';
    pool += words[i];
  }
  return pool;
}

}  // namespace

Result<std::vector<ConfigEntry>> parse_config(std::string_view text) {
  std::vector<ConfigEntry> out;
  std::map<std::string, int> seen;  // name -> line
  int n = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view raw = text.substr(pos, end - pos);
    pos = end + 1;
    ++n;
    if (size_t hash = raw.find('#'); hash != std::string_view::npos) raw = raw.substr(0, hash);
    auto words = split_words(raw);
    if (words.empty()) {
      if (end == text.size()) break;
      continue;
    }
    const std::string where = "line " + std::to_string(n) + ": ";
    auto line = parse_scheduler_line(words);
    if (!line) return Status(line.status().code(), where + line.status().message());
    if (auto it = seen.find(line->name); it != seen.end()) {
      return invalid(where + "'" + line->name + "' is defined again (first on line " +
                     std::to_string(it->second) + ")");
    }
    const std::string parent = parent_name(line->name);
    if (!parent.empty() && !seen.count(parent)) {
      // Not an error by itself: the parent may exist already in the running
      // tree. It is one when the parent comes later in the file.
      for (size_t p = pos; p < text.size();) {
        size_t e = text.find('\n', p);
        if (e == std::string_view::npos) e = text.size();
        std::string_view later = text.substr(p, e - p);
        if (size_t h = later.find('#'); h != std::string_view::npos) later = later.substr(0, h);
        auto lw = split_words(later);
        size_t f = (!lw.empty() && lw[0] == "usched") ? 1 : 0;
        if (lw.size() > f && lw[f] == parent) {
          return invalid(where + "'" + line->name + "' comes before its parent '" + parent +
                         "'; define the parent first");
        }
        p = e + 1;
      }
    }
    seen.emplace(line->name, n);
    ConfigEntry e;
    e.line = n;
    e.text = std::string(raw);
    while (!e.text.empty() && (e.text.back() == ' ' || e.text.back() == '\t' || e.text.back() == '\r'))
      e.text.pop_back();
    e.scheduler = std::move(*line);
    e.pool_text = pool_words(words);
    out.push_back(std::move(e));
    if (end == text.size()) break;
  }
  return out;
}

}  // namespace usched
