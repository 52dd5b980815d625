//! A pool: the parent vcpus an entity is carved from, written in the
//! parent's vcpu numbers ("cpu*", "cpu1 cpu2", "cpu0-3", "0-3,6").
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "usched/result.h"

namespace usched {

struct PoolSpec {
  // "cpu*": every vcpu of the parent, following the parent when it resizes.
  bool all = true;
  // Sorted, unique parent vcpu numbers when !all.
  std::vector<int> vcpus;

  static PoolSpec everything() { return PoolSpec{}; }
  // Each word is "cpu*", "cpuN", "cpuN-M", "N", "N-M" or a comma list of
  // those ("cpu0-1,cpu3" or "0-1,3"). Duplicates fold. An empty list, a
  // negative or huge number, a reversed range or a stray word is an error
  // naming the word.
  static Result<PoolSpec> parse(const std::vector<std::string>& words);
  static Result<PoolSpec> parse(std::string_view text);  // split on spaces
  // "cpu*" or "cpu0-3,6".
  std::string to_string() const;
  // The parent vcpu numbers, given the parent's vcpu count.
  std::vector<int> resolve(int parent_vcpus) const;
  bool operator==(const PoolSpec& o) const { return all == o.all && vcpus == o.vcpus; }
};

// Which parent pool positions each vcpu of an entity maps to (DESIGN.md):
//   V <= P: V contiguous blocks whose sizes differ by at most one, the larger
//           blocks first (4 vcpus on 8 -> {0,1},{2,3},{4,5},{6,7});
//   V >  P: vcpu i -> pool[i mod P].
// Returned as indexes into the pool (0..P-1). P >= 1, V >= 1.
std::vector<std::vector<int>> vcpu_blocks(int pool_size, int vcpus);

}  // namespace usched
