// The pure half of the systemd cgroup driver: names, escaping, properties.
#include "usched/glue/systemd_names.h"

#include <algorithm>
#include <cstdio>

namespace usched::glue::systemd {
namespace {

bool plain(char c, bool first) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  if (c == ':' || c == '_') return true;
  return c == '.' && !first;
}

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

std::string escape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '/') {
      out += '-';
    } else if (plain(c, i == 0)) {
      out += c;
    } else {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(c));
      out += buf;
    }
  }
  return out;
}

std::optional<std::string> unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\') {
      out += s[i];
      continue;
    }
    if (i + 3 >= s.size() || s[i + 1] != 'x') return std::nullopt;
    const int hi = hex(s[i + 2]), lo = hex(s[i + 3]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 3;
  }
  return out;
}

namespace {

// "usched", "usched-batch", "usched-batch-jobA": the prefix of each level.
std::vector<std::string> prefixes(std::string_view top, std::string_view entity) {
  std::vector<std::string> out{escape(top)};
  size_t pos = 0;
  while (!entity.empty() && pos <= entity.size()) {
    size_t end = entity.find('/', pos);
    if (end == std::string_view::npos) end = entity.size();
    out.push_back(out.back() + "-" + escape(entity.substr(pos, end - pos)));
    pos = end + 1;
  }
  return out;
}

}  // namespace

std::string slice_name(std::string_view top, std::string_view entity) {
  return prefixes(top, entity).back() + ".slice";
}

std::string slice_path(std::string_view top, std::string_view entity) {
  std::string path;
  for (const std::string& p : prefixes(top, entity)) path += "/" + p + ".slice";
  return path;
}

std::optional<std::string> entity_of_slice(std::string_view top, std::string_view unit) {
  const std::string head = escape(top);
  if (!ends_with(unit, ".slice")) return std::nullopt;
  std::string_view body = unit.substr(0, unit.size() - 6);
  if (body == head) return std::string();
  if (body.size() <= head.size() + 1 || body.substr(0, head.size()) != head || body[head.size()] != '-')
    return std::nullopt;
  body.remove_prefix(head.size() + 1);
  std::string entity;
  size_t pos = 0;
  while (pos <= body.size()) {
    size_t end = body.find('-', pos);
    if (end == std::string_view::npos) end = body.size();
    auto part = unescape(body.substr(pos, end - pos));
    if (!part || part->empty()) return std::nullopt;
    if (!entity.empty()) entity += '/';
    entity += *part;
    pos = end + 1;
  }
  return entity;
}

std::string run_scope_name(std::string_view top, int pid, uint64_t seq) {
  std::string name = escape(top) + "-run-" + std::to_string(pid);
  if (seq > 0) name += "-" + std::to_string(seq);
  return name + ".scope";
}

std::string returned_scope_name(std::string_view top, int pid) {
  return escape(top) + "-returned-" + std::to_string(pid) + ".scope";
}

CgroupUnit unit_of_cgroup(std::string_view path) {
  CgroupUnit u;
  u.slice = "-.slice";
  size_t pos = 0;
  while (pos < path.size()) {
    if (path[pos] == '/') {
      ++pos;
      continue;
    }
    size_t end = path.find('/', pos);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view part = path.substr(pos, end - pos);
    if (ends_with(part, ".slice")) {
      u.slice = std::string(part);
      pos = end;
      continue;
    }
    u.unit = std::string(part);
    if (end < path.size()) u.subcgroup = std::string(path.substr(end));
    while (u.subcgroup.size() > 1 && u.subcgroup.back() == '/') u.subcgroup.pop_back();
    if (u.subcgroup == "/") u.subcgroup.clear();
    break;
  }
  return u;
}

bool in_our_tree(std::string_view top, std::string_view path) {
  const std::string head = "/" + escape(top) + ".slice/";
  return path.substr(0, head.size()) == head;
}

bool is_service(std::string_view unit) { return ends_with(unit, ".service"); }

std::vector<uint8_t> cpu_mask(const CpuSet& cpus) {
  std::vector<uint8_t> out;
  if (cpus.empty()) return out;
  out.assign(static_cast<size_t>(cpus.last() / 8 + 1), 0);
  for (int c : cpus.to_vector()) out[static_cast<size_t>(c / 8)] |= static_cast<uint8_t>(1u << (c % 8));
  return out;
}

uint64_t cpu_weight(const ClassParams& cls) {
  if (cls.cls == SchedClass::kIdle || cls.cgroup_idle) return 1;
  return static_cast<uint64_t>(std::clamp(cls.cpu_weight, 1, 10000));
}

const char* signature(const PropValue& v) {
  switch (v.index()) {
    case 0: return "s";
    case 1: return "b";
    case 2: return "t";
    case 3: return "au";
    case 4: return "ay";
  }
  return "?";
}

std::vector<Property> slice_properties(std::string_view entity, const CpuSet& cpus, const ClassParams& cls) {
  return {
      {"Description", std::string(entity.empty() ? "usched: the scheduler tree" : "usched scheduler " + std::string(entity))},
      {"AllowedCPUs", cpu_mask(cpus)},
      {"CPUWeight", cpu_weight(cls)},
  };
}

std::vector<Property> scope_properties(std::string_view slice, int pid, std::string_view description) {
  return {
      {"Description", std::string(description)},
      {"Slice", std::string(slice)},
      {"PIDs", std::vector<uint32_t>{static_cast<uint32_t>(pid)}},
      {"Delegate", true},
  };
}

std::string describe(const std::vector<Property>& props) {
  std::string out;
  for (const Property& p : props) {
    if (!out.empty()) out += ' ';
    out += p.name + "=";
    switch (p.value.index()) {
      case 0: out += std::get<0>(p.value); break;
      case 1: out += std::get<1>(p.value) ? "yes" : "no"; break;
      case 2: out += std::to_string(std::get<2>(p.value)); break;
      case 3: {
        std::string l;
        for (uint32_t x : std::get<3>(p.value)) l += (l.empty() ? "" : " ") + std::to_string(x);
        out += l;
        break;
      }
      case 4: {
        CpuSet s;
        const auto& m = std::get<4>(p.value);
        for (size_t i = 0; i < m.size(); ++i)
          for (int b = 0; b < 8; ++b)
            if (m[i] & (1u << b)) s.add(static_cast<int>(i) * 8 + b);
        out += s.to_string();
        break;
      }
    }
  }
  return out;
}

}  // namespace usched::glue::systemd
