//! libFuzzer target: the cpulist parser (sysfs lists, API and CLI pools).
//! Whatever it accepts must print back to a list that parses to the same
//! set; nothing it is given may crash it or make it allocate without bound.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "usched/cpuset.h"
#include "usched/pool.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto s = usched::CpuSet::parse(text); s.is_ok()) {
    auto again = usched::CpuSet::parse(s->to_string());
    if (!again.is_ok() || *again != *s) __builtin_trap();
  }
  if (auto p = usched::PoolSpec::parse(text); p.is_ok()) {
    auto again = usched::PoolSpec::parse(std::string_view(p->to_string()));
    if (!again.is_ok() || again->to_string() != p->to_string()) __builtin_trap();
  }
  return 0;
}
