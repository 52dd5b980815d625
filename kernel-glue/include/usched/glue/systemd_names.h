//! The pure half of the systemd cgroup driver (docs/systemd.md): unit names
//! for entities and members, systemd's unit-name escaping, the properties
//! a slice or scope is made with, and which unit a cgroup path belongs to.
//! No D-Bus and no file system here, so all of it is unit-tested.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "usched/cpuset.h"
#include "usched/lwkt.h"

namespace usched::glue::systemd {

// systemd's unit_name_escape() of one name component (systemd-escape(1)):
// ASCII letters, digits, ':', '_' and '.' stay (a leading '.' does not);
// '/' becomes '-'; every other byte, '-' included, becomes "\xNN".
std::string escape(std::string_view s);
// The inverse; nullopt for a malformed "\x" sequence.
std::optional<std::string> unescape(std::string_view s);

// "usched" + "" -> "usched.slice"; "usched" + "batch/my-job" ->
// "usched-batch-my\x2djob.slice" (systemd.slice(5): '-' nests slices).
std::string slice_name(std::string_view top, std::string_view entity);
// The cgroup path of that slice below the cgroup root:
// "/usched.slice/usched-batch.slice/usched-batch-jobA.slice".
std::string slice_path(std::string_view top, std::string_view entity);
// The entity a slice name stands for ("" for the top slice); nullopt when
// the name is not one of ours or does not unescape.
std::optional<std::string> entity_of_slice(std::string_view top, std::string_view unit);

// "usched-run-42.scope", or "usched-run-42-7.scope" when seq > 0 (a scope
// name cannot be reused while the old scope is still being stopped).
std::string run_scope_name(std::string_view top, int pid, uint64_t seq);
// Where a process that leaves usched goes when its old unit is gone.
std::string returned_scope_name(std::string_view top, int pid);

// A cgroup path ("/system.slice/victim.service/sub") split as systemd's
// manager sees it: the slices above, the first unit that is not a slice,
// and the sub-cgroup inside that unit. A path made of slices only (or "/")
// has no unit.
struct CgroupUnit {
  std::string slice;      // the innermost slice ("-.slice" for the root)
  std::string unit;       // "victim.service"; "" when in no unit
  std::string subcgroup;  // "/sub"; "" when the process sits in the unit's own cgroup
};
CgroupUnit unit_of_cgroup(std::string_view path);
// Whether path lies in the top slice's subtree (our slices and scopes).
bool in_our_tree(std::string_view top, std::string_view path);
bool is_service(std::string_view unit);

// AllowedCPUs= on the bus: an array of bytes, bit (cpu % 8) of byte
// (cpu / 8), as systemd's cpu_set_to_dbus() makes it.
std::vector<uint8_t> cpu_mask(const CpuSet& cpus);
// CPUWeight= for a class: the class's cgroup weight, 1..10000; idle
// classes get 1 (systemd 252 has no property for cpu.idle).
uint64_t cpu_weight(const ClassParams& cls);

// One (sv) of StartTransientUnit / SetUnitProperties.
using PropValue = std::variant<std::string, bool, uint64_t, std::vector<uint32_t>, std::vector<uint8_t>>;
struct Property {
  std::string name;
  PropValue value;
  bool operator==(const Property&) const = default;
};
// D-Bus signature of a value: "s", "b", "t", "au", "ay".
const char* signature(const PropValue& v);
// What a slice is made and resized with.
std::vector<Property> slice_properties(std::string_view entity, const CpuSet& cpus, const ClassParams& cls);
// What a member's scope is started with.
std::vector<Property> scope_properties(std::string_view slice, int pid, std::string_view description);
// "AllowedCPUs=0-1 CPUWeight=100" for logs and errors.
std::string describe(const std::vector<Property>& props);

}  // namespace usched::glue::systemd
