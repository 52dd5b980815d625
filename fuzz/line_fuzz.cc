//! libFuzzer target: the line syntax ("NAME on POOL... [options]") as typed
//! after `usched` or read from a config file, and scheduler names. An
//! accepted line must carry a valid name and an lwktpri in range.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "usched/line.h"
#include "usched/lwkt.h"
#include "usched/names.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)usched::validate_name(text);
  (void)usched::parent_name(text);
  auto l = usched::parse_scheduler_line(text);
  if (l.is_ok()) {
    if (!usched::validate_name(l->name)) __builtin_trap();
    if (l->lwktpri && (*l->lwktpri < 0 || *l->lwktpri > usched::kMaxLwktpri)) __builtin_trap();
    // No path traversal: no component is "." or "..", none is empty.
    const std::string n = "/" + l->name + "/";
    if (n.find("/../") != std::string::npos || n.find("/./") != std::string::npos ||
        n.find("//") != std::string::npos)
      __builtin_trap();
  }
  return 0;
}
