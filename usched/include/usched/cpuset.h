//! CpuSet: a set of CPU numbers, with the kernel's cpulist format
//! ("0-3,6") both ways. Pure: no I/O.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "usched/result.h"

namespace usched {

// Highest CPU number + 1 that we accept anywhere (Linux's NR_CPUS maximum).
inline constexpr int kMaxCpus = 8192;

class CpuSet {
 public:
  CpuSet() = default;
  static CpuSet of(std::initializer_list<int> cpus);
  // [lo, hi] inclusive.
  static CpuSet range(int lo, int hi);
  // Kernel cpulist: "", "0", "0-3,6", "0-7:2" is NOT accepted. Whitespace
  // around the whole string (a trailing newline from sysfs) is ignored.
  // Errors name the offending token and say why ("cpu 9000 is beyond 8191",
  // "range 5-3 is reversed", "'x' is not a number").
  static Result<CpuSet> parse(std::string_view cpulist);

  void add(int cpu);
  void remove(int cpu);
  bool contains(int cpu) const;
  int count() const;
  bool empty() const { return count() == 0; }
  // Lowest CPU, or -1 when empty.
  int first() const;
  // Highest CPU, or -1 when empty.
  int last() const;
  std::vector<int> to_vector() const;
  // Canonical cpulist: "0-3,6"; "" when empty.
  std::string to_string() const;

  CpuSet operator|(const CpuSet& o) const;
  CpuSet operator&(const CpuSet& o) const;
  CpuSet operator-(const CpuSet& o) const;
  CpuSet& operator|=(const CpuSet& o);
  bool intersects(const CpuSet& o) const;
  bool is_subset_of(const CpuSet& o) const;
  bool operator==(const CpuSet& o) const;
  bool operator!=(const CpuSet& o) const { return !(*this == o); }

 private:
  void trim();
  std::vector<uint64_t> words_;  // bit i of word w is CPU 64*w+i; no trailing zero words
};

}  // namespace usched
