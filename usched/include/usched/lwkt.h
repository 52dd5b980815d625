//! LWKT priority (0..31, higher is more important) to Linux scheduling:
//!   0-4  idle      SCHED_IDLE, cgroup cpu.idle=1
//!   5-7  normal    SCHED_OTHER, cgroup weight ~4x per level
//!   8-31 realtime  SCHED_RR, rt priority lwktpri-7 (1..24)
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "usched/result.h"

namespace usched {

inline constexpr int kMaxLwktpri = 31;

enum class SchedClass { kIdle, kNormal, kRealtime };

const char* class_name(SchedClass c);  // "idle", "normal", "realtime"
Result<SchedClass> parse_class(std::string_view s);  // idle|normal|realtime|rr

struct ClassParams {
  SchedClass cls = SchedClass::kNormal;
  int rt_priority = 0;    // 1..99 for realtime, else 0
  int cpu_weight = 100;   // cgroup v2 cpu.weight, 1..10000
  int cpu_shares = 1024;  // cgroup v1 cpu.shares, 2..262144
  bool cgroup_idle = false;
};

Status validate_lwktpri(int lwktpri);
// lwktpri must be valid. An override changes the class; the weight still
// follows lwktpri inside the normal band (5: 25/256, 6: 100/1024,
// 7: 400/4096) and is 100/1024 for an overridden normal class outside it.
// Realtime priority is lwktpri-7 clamped to 1..99.
ClassParams class_for(int lwktpri, std::optional<SchedClass> override_class = std::nullopt);

}  // namespace usched
