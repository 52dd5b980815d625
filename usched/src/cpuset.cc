#include "usched/cpuset.h"

#include <algorithm>
#include <bit>
#include <charconv>

namespace usched {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

std::string_view trim_ws(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// Parses a non-negative decimal CPU number; error names `token`.
Result<int> parse_cpu(std::string_view num, std::string_view token) {
  if (num.empty()) return invalid("'" + std::string(token) + "' is not a number");
  for (char c : num) {
    if (c < '0' || c > '9') return invalid("'" + std::string(token) + "' is not a number");
  }
  // Bound the value without overflow.
  long long v = 0;
  for (char c : num) {
    v = v * 10 + (c - '0');
    if (v > 1000000000LL) v = 1000000000LL;
  }
  if (v >= kMaxCpus) {
    return invalid("cpu " + std::string(num) + " is beyond " + std::to_string(kMaxCpus - 1));
  }
  return static_cast<int>(v);
}

}  // namespace

CpuSet CpuSet::of(std::initializer_list<int> cpus) {
  CpuSet s;
  for (int c : cpus) s.add(c);
  return s;
}

CpuSet CpuSet::range(int lo, int hi) {
  CpuSet s;
  for (int c = lo; c <= hi; ++c) s.add(c);
  return s;
}

Result<CpuSet> CpuSet::parse(std::string_view cpulist) {
  std::string_view s = trim_ws(cpulist);
  CpuSet out;
  if (s.empty()) return out;
  size_t pos = 0;
  while (true) {
    size_t comma = s.find(',', pos);
    std::string_view tok = s.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
    if (tok.empty()) return invalid("empty entry in cpulist '" + std::string(s) + "'");
    size_t dash = tok.find('-');
    if (dash == std::string_view::npos) {
      auto c = parse_cpu(tok, tok);
      if (!c) return c.status();
      out.add(*c);
    } else {
      auto lo = parse_cpu(tok.substr(0, dash), tok);
      if (!lo) return lo.status();
      auto hi = parse_cpu(tok.substr(dash + 1), tok);
      if (!hi) return hi.status();
      if (*hi < *lo) return invalid("range " + std::string(tok) + " is reversed");
      for (int c = *lo; c <= *hi; ++c) out.add(c);
    }
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  return out;
}

void CpuSet::add(int cpu) {
  if (cpu < 0) return;
  size_t w = static_cast<size_t>(cpu) / 64;
  if (words_.size() <= w) words_.resize(w + 1, 0);
  words_[w] |= uint64_t{1} << (cpu % 64);
}

void CpuSet::remove(int cpu) {
  if (cpu < 0) return;
  size_t w = static_cast<size_t>(cpu) / 64;
  if (w >= words_.size()) return;
  words_[w] &= ~(uint64_t{1} << (cpu % 64));
  trim();
}

bool CpuSet::contains(int cpu) const {
  if (cpu < 0) return false;
  size_t w = static_cast<size_t>(cpu) / 64;
  if (w >= words_.size()) return false;
  return (words_[w] >> (cpu % 64)) & 1;
}

int CpuSet::count() const {
  int n = 0;
  for (uint64_t w : words_) n += std::popcount(w);
  return n;
}

int CpuSet::first() const {
  for (size_t i = 0; i < words_.size(); ++i) {
    if (words_[i]) return static_cast<int>(i * 64) + std::countr_zero(words_[i]);
  }
  return -1;
}

int CpuSet::last() const {
  for (size_t i = words_.size(); i-- > 0;) {
    if (words_[i]) return static_cast<int>(i * 64) + 63 - std::countl_zero(words_[i]);
  }
  return -1;
}

std::vector<int> CpuSet::to_vector() const {
  std::vector<int> v;
  for (size_t i = 0; i < words_.size(); ++i) {
    uint64_t w = words_[i];
    while (w) {
      int b = std::countr_zero(w);
      v.push_back(static_cast<int>(i * 64) + b);
      w &= w - 1;
    }
  }
  return v;
}

std::string CpuSet::to_string() const {
  std::string out;
  std::vector<int> v = to_vector();
  for (size_t i = 0; i < v.size();) {
    size_t j = i;
    while (j + 1 < v.size() && v[j + 1] == v[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += std::to_string(v[i]);
    if (j > i) out += '-' + std::to_string(v[j]);
    i = j + 1;
  }
  return out;
}

CpuSet CpuSet::operator|(const CpuSet& o) const {
  CpuSet r = *this;
  r |= o;
  return r;
}

CpuSet& CpuSet::operator|=(const CpuSet& o) {
  if (words_.size() < o.words_.size()) words_.resize(o.words_.size(), 0);
  for (size_t i = 0; i < o.words_.size(); ++i) words_[i] |= o.words_[i];
  return *this;
}

CpuSet CpuSet::operator&(const CpuSet& o) const {
  CpuSet r;
  size_t n = std::min(words_.size(), o.words_.size());
  r.words_.resize(n);
  for (size_t i = 0; i < n; ++i) r.words_[i] = words_[i] & o.words_[i];
  r.trim();
  return r;
}

CpuSet CpuSet::operator-(const CpuSet& o) const {
  CpuSet r = *this;
  size_t n = std::min(r.words_.size(), o.words_.size());
  for (size_t i = 0; i < n; ++i) r.words_[i] &= ~o.words_[i];
  r.trim();
  return r;
}

bool CpuSet::intersects(const CpuSet& o) const {
  size_t n = std::min(words_.size(), o.words_.size());
  for (size_t i = 0; i < n; ++i) {
    if (words_[i] & o.words_[i]) return true;
  }
  return false;
}

bool CpuSet::is_subset_of(const CpuSet& o) const { return (*this - o).empty(); }

bool CpuSet::operator==(const CpuSet& o) const { return words_ == o.words_; }

void CpuSet::trim() {
  while (!words_.empty() && words_.back() == 0) words_.pop_back();
}

}  // namespace usched
