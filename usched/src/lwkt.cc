#include "usched/lwkt.h"

#include <algorithm>
#include <cctype>

namespace usched {

const char* class_name(SchedClass c) {
  switch (c) {
    case SchedClass::kIdle: return "idle";
    case SchedClass::kNormal: return "normal";
    case SchedClass::kRealtime: return "realtime";
  }
  return "normal";
}

Result<SchedClass> parse_class(std::string_view s) {
  std::string l;
  for (char c : s) l += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (l == "idle") return SchedClass::kIdle;
  if (l == "normal" || l == "other") return SchedClass::kNormal;
  if (l == "realtime" || l == "rr") return SchedClass::kRealtime;
  return invalid("class '" + std::string(s) + "' is not one of idle, normal, realtime");
}

Status validate_lwktpri(int lwktpri) {
  if (lwktpri < 0 || lwktpri > kMaxLwktpri) {
    return invalid("lwktpri " + std::to_string(lwktpri) + " is out of range 0.." +
                   std::to_string(kMaxLwktpri));
  }
  return Status::ok();
}

ClassParams class_for(int lwktpri, std::optional<SchedClass> override_class) {
  SchedClass def = lwktpri <= 4 ? SchedClass::kIdle
                   : lwktpri <= 7 ? SchedClass::kNormal
                                  : SchedClass::kRealtime;
  SchedClass cls = override_class.value_or(def);
  ClassParams p;
  p.cls = cls;
  switch (cls) {
    case SchedClass::kIdle:
      p.cpu_weight = 1;
      p.cpu_shares = 2;
      p.cgroup_idle = true;
      p.rt_priority = 0;
      break;
    case SchedClass::kNormal:
      if (lwktpri == 5) {
        p.cpu_weight = 25;
        p.cpu_shares = 256;
      } else if (lwktpri == 7) {
        p.cpu_weight = 400;
        p.cpu_shares = 4096;
      } else {
        p.cpu_weight = 100;
        p.cpu_shares = 1024;
      }
      break;
    case SchedClass::kRealtime:
      p.rt_priority = std::clamp(lwktpri - 7, 1, 99);
      p.cpu_weight = 100;
      p.cpu_shares = 1024;
      break;
  }
  return p;
}

}  // namespace usched
