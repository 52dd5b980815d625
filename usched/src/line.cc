#include "usched/line.h"

#include <set>

#include "usched/names.h"

namespace usched {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

const std::set<std::string>& keywords() {
  static const std::set<std::string> k = {"vcpus", "lwktpri", "class", "locked",
                                          "unlocked", "exclusive", "shared", "isolated"};
  return k;
}

// Pool words start with "cpu", a digit or '*'; anything else ends the pool
// so it is reported as an unknown word.
bool looks_like_pool(const std::string& w) {
  if (w.rfind("cpu", 0) == 0 || w.rfind("CPU", 0) == 0) return true;
  return !w.empty() && ((w[0] >= '0' && w[0] <= '9') || w[0] == '*');
}

// Decimal integer in [lo, hi]; nullopt otherwise.
std::optional<int> parse_int(const std::string& s, int lo, int hi) {
  if (s.empty() || s.size() > 9) return std::nullopt;
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  if (v < lo || v > hi) return std::nullopt;
  return v;
}

}  // namespace

std::vector<std::string> split_words(std::string_view line) {
  std::vector<std::string> words;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && is_space(line[i])) ++i;
    size_t j = i;
    while (j < line.size() && !is_space(line[j])) ++j;
    if (j > i) words.emplace_back(line.substr(i, j - i));
    i = j;
  }
  return words;
}

Result<SchedulerLine> parse_scheduler_line(const std::vector<std::string>& words) {
  size_t i = 0;
  if (i < words.size() && words[i] == "usched") ++i;
  if (i >= words.size()) return invalid("expected a scheduler NAME");
  SchedulerLine out;
  out.name = words[i++];
  if (Status s = validate_name(out.name); !s) return s;
  if (i >= words.size()) return invalid("expected 'on' after NAME, got end of line");
  if (words[i] != "on") return invalid("expected 'on' after NAME, got '" + words[i] + "'");
  ++i;
  std::vector<std::string> pool_words;
  while (i < words.size() && !keywords().count(words[i]) && looks_like_pool(words[i])) {
    pool_words.push_back(words[i++]);
  }
  if (pool_words.empty()) return invalid("expected a pool after 'on' (e.g. cpu0-3 or cpu*)");
  auto pool = PoolSpec::parse(pool_words);
  if (!pool) return pool.status();
  out.pool = *pool;
  while (i < words.size()) {
    const std::string& w = words[i++];
    auto arg = [&]() -> std::optional<std::string> {
      if (i >= words.size()) return std::nullopt;
      return words[i++];
    };
    if (w == "vcpus") {
      auto a = arg();
      auto n = a ? parse_int(*a, 1, 4096) : std::nullopt;
      if (!n) return invalid("vcpus needs a number 1..4096, got '" + a.value_or("") + "'");
      out.vcpus = *n;
    } else if (w == "lwktpri") {
      auto a = arg();
      auto n = a ? parse_int(*a, 0, kMaxLwktpri) : std::nullopt;
      if (!n) return invalid("lwktpri needs a number 0..31, got '" + a.value_or("") + "'");
      out.lwktpri = *n;
    } else if (w == "class") {
      auto a = arg();
      if (!a) return invalid("class needs one of idle, normal, realtime, got ''");
      auto c = parse_class(*a);
      if (!c) return invalid("class needs one of idle, normal, realtime, got '" + *a + "'");
      out.class_override = *c;
    } else if (w == "locked") {
      out.locked = true;
    } else if (w == "unlocked") {
      out.locked = false;
    } else if (w == "exclusive") {
      out.exclusive = true;
    } else if (w == "shared") {
      out.exclusive = false;
    } else if (w == "isolated") {
      out.isolated = true;
    } else {
      return invalid("unknown word '" + w + "'");
    }
  }
  if (out.isolated) {
    if (out.exclusive == false)
      return invalid("'isolated' makes a scheduler exclusive; it cannot be 'shared' too");
    out.exclusive = true;
  } else if (out.exclusive) {
    out.isolated = false;  // "exclusive" alone: a partition that the kernel load-balances
  }
  return out;
}

Result<SchedulerLine> parse_scheduler_line(std::string_view line) {
  return parse_scheduler_line(split_words(line));
}

}  // namespace usched
