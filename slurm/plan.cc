#include "plan.h"

#include <algorithm>
#include <charconv>
#include <map>

namespace usched::slurm {

Result<CpuSet> cores_to_cpus(std::string_view cores, const std::vector<CpuTopo>& topo) {
  // Slurm's core list has the syntax of a kernel cpulist.
  auto wanted = CpuSet::parse(cores);
  if (!wanted) return invalid("Slurm's core list '" + std::string(cores) + "': " + wanted.status().message());
  std::map<std::pair<int, int>, CpuSet> by_core;
  for (const CpuTopo& t : topo) by_core[{t.package, t.core}].add(t.cpu);
  std::vector<CpuSet> ordered;
  ordered.reserve(by_core.size());
  for (auto& [key, cpus] : by_core) ordered.push_back(cpus);
  CpuSet out;
  for (int c : wanted->to_vector()) {
    if (c >= static_cast<int>(ordered.size())) {
      return invalid("Slurm gave the step core " + std::to_string(c) + " but this node has " +
                     std::to_string(ordered.size()) + " cores");
    }
    out |= ordered[c];
  }
  return out;
}

Result<std::vector<std::pair<int, CpuSet>>> parse_vcpus(std::string_view list) {
  std::vector<std::pair<int, CpuSet>> out;
  size_t pos = 0;
  while (pos < list.size()) {
    if (list[pos] == ' ') {
      ++pos;
      continue;
    }
    const size_t end = std::min(list.find(' ', pos), list.size());
    const std::string_view entry = list.substr(pos, end - pos);
    pos = end;
    const size_t colon = entry.find(':');
    int index = -1;
    const char* first = entry.data();
    const char* last = entry.data() + (colon == std::string_view::npos ? 0 : colon);
    auto [p, ec] = std::from_chars(first, last, index);
    if (colon == std::string_view::npos || ec != std::errc() || p != last || index < 0) {
      return invalid("vcpu list entry '" + std::string(entry) + "': expected INDEX:CPUS");
    }
    auto cpus = CpuSet::parse(entry.substr(colon + 1));
    if (!cpus) return invalid("vcpu list entry '" + std::string(entry) + "': " + cpus.status().message());
    out.emplace_back(index, *cpus);
  }
  return out;
}

Result<std::string> pool_on(const std::string& name, const std::vector<std::pair<int, CpuSet>>& vcpus,
                            const CpuSet& cpus) {
  std::string pool;
  for (const auto& [index, vc] : vcpus) {
    if (vc.empty() || !vc.is_subset_of(cpus)) continue;
    if (!pool.empty()) pool += ' ';
    pool += "cpu" + std::to_string(index);
  }
  if (pool.empty()) {
    return precondition("scheduler '" + name + "' has no vcpu on the CPUs Slurm gave this step (" +
                        cpus.to_string() + ")");
  }
  return pool;
}

std::string step_component(uint32_t job_id, uint32_t step_id) {
  std::string step;
  switch (step_id) {
    case 0xfffffffbu: step = "batch"; break;        // SLURM_BATCH_SCRIPT
    case 0xfffffffcu: step = "extern"; break;       // SLURM_EXTERN_CONT
    case 0xfffffffau: step = "interactive"; break;  // SLURM_INTERACTIVE_STEP
    default: step = std::to_string(step_id);
  }
  return "job" + std::to_string(job_id) + "." + step;
}

Result<PluginArgs> parse_args(const std::vector<std::string>& args) {
  PluginArgs out;
  for (const std::string& a : args) {
    const auto eq = a.find('=');
    const std::string key = a.substr(0, eq);
    const std::string val = eq == std::string::npos ? "" : a.substr(eq + 1);
    if (key == "socket" && !val.empty()) {
      if (val[0] != '/') return invalid("plugstack.conf argument '" + a + "': the socket must be an absolute path");
      out.socket = val;
    } else if (key == "quantum" && !val.empty()) {
      int q = 0;
      auto [p, ec] = std::from_chars(val.data(), val.data() + val.size(), q);
      if (ec != std::errc() || p != val.data() + val.size() || q < 1 || q > 60000) {
        return invalid("plugstack.conf argument '" + a + "': quantum is milliseconds, 1 to 60000");
      }
      out.quantum_ms = q;
    } else if (key == "allow" && !val.empty()) {
      size_t from = 0;
      while (from <= val.size()) {
        const size_t to = std::min(val.find(':', from), val.size());
        if (to > from) out.allow.push_back(val.substr(from, to - from));
        from = to + 1;
      }
    } else {
      return invalid("plugstack.conf argument '" + a + "' is not one of socket=PATH, quantum=MS, allow=NAME[:NAME...]");
    }
  }
  return out;
}

Status may_use(const std::string& name, const std::vector<std::pair<std::string, uint32_t>>& owners, uint32_t uid,
               const std::vector<std::string>& allow) {
  if (uid == 0) return Status::ok();
  auto at_or_below = [&](const std::string& top) {
    return name == top || (name.size() > top.size() && name.compare(0, top.size(), top) == 0 && name[top.size()] == '/');
  };
  for (const auto& [n, owner] : owners) {
    if (owner == uid && at_or_below(n)) return Status::ok();
  }
  for (const std::string& a : allow) {
    if (at_or_below(a)) return Status::ok();
  }
  return denied("uid " + std::to_string(uid) + " may not use scheduler '" + name +
                "': it is not the user's (usched chown) and not on the plugin's allow= list in plugstack.conf");
}

std::string expand_node(const std::string& pattern, const std::string& node) {
  std::string out;
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '%' && i + 1 < pattern.size() && pattern[i + 1] == 'n') {
      out += node;
      ++i;
    } else {
      out += pattern[i];
    }
  }
  return out;
}

}  // namespace usched::slurm
