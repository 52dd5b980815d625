#include "usched/pool.h"

#include <algorithm>

namespace usched {
namespace {

inline constexpr int kMaxPoolVcpu = 4095;

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

// "N" with 0 <= N <= kMaxPoolVcpu, or an error naming `word`.
Result<int> parse_num(std::string_view s, const std::string& word) {
  if (s.empty()) return invalid("pool word '" + word + "' is not a cpu, cpu range or cpu*");
  for (char c : s) {
    if (c < '0' || c > '9') {
      return invalid("pool word '" + word + "' is not a cpu, cpu range or cpu*");
    }
  }
  long long v = 0;
  for (char c : s) {
    v = v * 10 + (c - '0');
    if (v > 1000000000LL) v = 1000000000LL;
  }
  if (v > kMaxPoolVcpu) {
    return invalid("pool word '" + word + "': cpu " + std::string(s) + " is beyond " +
                   std::to_string(kMaxPoolVcpu));
  }
  return static_cast<int>(v);
}

std::string_view strip_cpu(std::string_view s) {
  if (s.size() >= 3 && (s.substr(0, 3) == "cpu" || s.substr(0, 3) == "CPU")) s.remove_prefix(3);
  return s;
}

}  // namespace

Result<PoolSpec> PoolSpec::parse(const std::vector<std::string>& words) {
  bool star = false;
  std::vector<int> v;
  std::string star_word;
  for (const std::string& word : words) {
    if (word.empty()) continue;
    size_t pos = 0;
    while (true) {
      size_t comma = word.find(',', pos);
      std::string_view item = std::string_view(word).substr(
          pos, comma == std::string::npos ? std::string_view::npos : comma - pos);
      if (item.empty()) return invalid("pool word '" + word + "' has an empty entry");
      if (item == "cpu*" || item == "*") {
        star = true;
        star_word = word;
      } else {
        std::string_view body = strip_cpu(item);
        size_t dash = body.find('-');
        if (dash == std::string_view::npos) {
          auto n = parse_num(body, word);
          if (!n) return n.status();
          v.push_back(*n);
        } else {
          auto lo = parse_num(body.substr(0, dash), word);
          if (!lo) return lo.status();
          auto hi = parse_num(strip_cpu(body.substr(dash + 1)), word);
          if (!hi) return hi.status();
          if (*hi < *lo) {
            return invalid("pool word '" + word + "': range " + std::string(item) + " is reversed");
          }
          for (int i = *lo; i <= *hi; ++i) v.push_back(i);
        }
      }
      if (comma == std::string::npos) break;
      pos = comma + 1;
    }
  }
  if (star) {
    if (!v.empty()) {
      return invalid("pool word '" + star_word + "': cpu* already means every cpu; do not mix it with a list");
    }
    return PoolSpec::everything();
  }
  if (v.empty()) return invalid("pool is empty");
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  PoolSpec p;
  p.all = false;
  p.vcpus = std::move(v);
  return p;
}

Result<PoolSpec> PoolSpec::parse(std::string_view text) {
  std::vector<std::string> words;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && is_space(text[i])) ++i;
    size_t j = i;
    while (j < text.size() && !is_space(text[j])) ++j;
    if (j > i) words.emplace_back(text.substr(i, j - i));
    i = j;
  }
  return parse(words);
}

std::string PoolSpec::to_string() const {
  if (all) return "cpu*";
  std::string out = "cpu";
  for (size_t i = 0; i < vcpus.size();) {
    size_t j = i;
    while (j + 1 < vcpus.size() && vcpus[j + 1] == vcpus[j] + 1) ++j;
    if (i > 0) out += ',';
    out += std::to_string(vcpus[i]);
    if (j > i) out += '-' + std::to_string(vcpus[j]);
    i = j + 1;
  }
  return out;
}

std::vector<int> PoolSpec::resolve(int parent_vcpus) const {
  if (!all) return vcpus;
  std::vector<int> out;
  for (int i = 0; i < parent_vcpus; ++i) out.push_back(i);
  return out;
}

std::vector<std::vector<int>> vcpu_blocks(int pool_size, int vcpus) {
  std::vector<std::vector<int>> out;
  if (pool_size <= 0 || vcpus <= 0) return out;
  out.resize(static_cast<size_t>(vcpus));
  if (vcpus <= pool_size) {
    int base = pool_size / vcpus, extra = pool_size % vcpus;
    int next = 0;
    for (int i = 0; i < vcpus; ++i) {
      int n = base + (i < extra ? 1 : 0);
      for (int k = 0; k < n; ++k) out[static_cast<size_t>(i)].push_back(next++);
    }
  } else {
    for (int i = 0; i < vcpus; ++i) out[static_cast<size_t>(i)].push_back(i % pool_size);
  }
  return out;
}

}  // namespace usched
