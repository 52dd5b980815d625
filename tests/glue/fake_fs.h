// A temp directory laid out like cgroupfs / procfs: directories and knob
// files (regular files) created up front, since the glue never creates a
// file and adopts existing directories.
#pragma once

#include <sched.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "usched/glue/knob.h"

namespace usched::glue::testing {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "usched-glue-XXXXXX").string();
    char* p = ::mkdtemp(tmpl.data());
    if (p) path_ = p;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(std::string_view rel) const { return path_ + "/" + std::string(rel); }

 private:
  std::string path_;
};

inline void put(const std::string& path, std::string_view content) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path) << content;
}

inline std::string get(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline bool exists(const std::string& path) { return std::filesystem::exists(path); }

// Records every write/mkdir/rmdir as "write REL=VALUE", "mkdir REL",
// "rmdir REL", with REL relative to base; removes the hook when destroyed.
class TraceRecorder {
 public:
  explicit TraceRecorder(std::string base) : base_(std::move(base)) {
    set_knob_trace([this](std::string_view op, const std::string& path, const std::string& value) {
      std::string rel = path.compare(0, base_.size() + 1, base_ + "/") == 0 ? path.substr(base_.size() + 1) : path;
      lines.push_back(std::string(op) + " " + rel + (op == "write" ? "=" + value : ""));
      // cgroupfs removes a group with its knob files; a plain directory
      // would refuse (ENOTEMPTY): drop them just before the rmdir.
      if (op == "rmdir" && cgroupfs_rmdir) {
        std::error_code ec;
        for (auto& e : std::filesystem::directory_iterator(path, ec)) {
          if (e.is_regular_file()) std::filesystem::remove(e.path(), ec);
        }
      }
    });
  }
  ~TraceRecorder() { set_knob_trace(nullptr); }
  TraceRecorder(const TraceRecorder&) = delete;
  TraceRecorder& operator=(const TraceRecorder&) = delete;
  // Only the writes, in order.
  std::vector<std::string> writes() const {
    std::vector<std::string> out;
    for (const auto& l : lines)
      if (l.rfind("write ", 0) == 0) out.push_back(l);
    return out;
  }
  size_t index_of(const std::string& line) const {
    for (size_t i = 0; i < lines.size(); ++i)
      if (lines[i] == line) return i;
    return lines.size();
  }
  std::vector<std::string> lines;
  bool cgroupfs_rmdir = false;  // rmdir of a group also removes its knob files

 private:
  std::string base_;
};

// This test process's current affinity as a cpulist: the only CPUs the
// tests may ask the real kernel for.
inline std::string own_cpus() {
  cpu_set_t s;
  CPU_ZERO(&s);
  sched_getaffinity(0, sizeof s, &s);
  std::string out;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &s)) out += (out.empty() ? "" : ",") + std::to_string(c);
  return out;
}

}  // namespace usched::glue::testing
