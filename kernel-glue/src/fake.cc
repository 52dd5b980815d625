// The fake back end: no kernel calls at all (place never touches a real
// task). Records one line per operation and fails on request, through the
// same KnobError as the real back ends.
#include <fcntl.h>
#include <unistd.h>

#include <charconv>
#include <map>
#include <mutex>

#include "internal.h"

namespace usched::glue::detail {
namespace {

struct FailRule {
  std::string op, substr;
  int err = 0;
};

Result<std::vector<FailRule>> parse_fail(const std::string& spec) {
  std::vector<FailRule> out;
  size_t pos = 0;
  while (pos < spec.size()) {
    size_t end = spec.find(',', pos);
    if (end == std::string::npos) end = spec.size();
    std::string item = spec.substr(pos, end - pos);
    pos = end + 1;
    if (item.empty()) continue;
    size_t eq = item.rfind('=');
    if (eq == std::string::npos || eq == 0) return invalid("fake_fail: '" + item + "' is not OP[:SUBSTR]=ERRNO");
    FailRule r;
    std::string lhs = item.substr(0, eq), rhs = item.substr(eq + 1);
    size_t colon = lhs.find(':');
    r.op = lhs.substr(0, colon);
    if (colon != std::string::npos) r.substr = lhs.substr(colon + 1);
    auto [p, ec] = std::from_chars(rhs.data(), rhs.data() + rhs.size(), r.err);
    if (rhs.empty() || ec != std::errc() || p != rhs.data() + rhs.size() || r.err <= 0)
      return invalid("fake_fail: '" + item + "': errno '" + rhs + "' is not a positive number");
    out.push_back(std::move(r));
  }
  return out;
}

std::string idle_flag(const ClassParams& c) { return wants_idle(c) ? "1" : "0"; }

class FakeGlue final : public Glue {
 public:
  FakeGlue(const Options& o, std::vector<FailRule> rules, CpuSet cpus, int log_fd)
      : o_(o), rules_(std::move(rules)), cpus_(std::move(cpus)), log_fd_(log_fd) {}
  ~FakeGlue() override {
    if (log_fd_ >= 0) ::close(log_fd_);
  }
  FakeGlue(const FakeGlue&) = delete;
  FakeGlue& operator=(const FakeGlue&) = delete;

  Kind kind() const override { return Kind::kFake; }
  Result<CpuSet> present_cpus() override {
    if (Status st = op("present_cpus", ""); !st) return st;
    return cpus_;
  }
  Result<CpuSet> online_cpus() override {
    if (Status st = op("online_cpus", ""); !st) return st;
    return cpus_;
  }
  Status setup() override { return op("setup", ""); }
  Status apply_group(const std::string& e, const GroupSettings& s) override {
    if (Status st = check_entity(e); !st) return st;
    std::string part;
    if (s.partition != Partition::kMember) part = std::string(" partition=") + partition_name(s.partition);
    if (Status st = op("apply_group", e + " cpus=" + s.cpus.to_string() + " weight=" + std::to_string(s.cls.cpu_weight) +
                                          " idle=" + idle_flag(s.cls) + part);
        !st)
      return st;
    std::lock_guard lock(mu_);
    partitions_[e] = partition_name(s.partition);
    return {};
  }
  // What apply_group asked for, as if the kernel always agreed.
  std::string partition_state(const std::string& e) override {
    std::lock_guard lock(mu_);
    auto it = partitions_.find(e);
    return it == partitions_.end() ? "" : it->second;
  }
  Status apply_groups(const std::vector<std::pair<std::string, GroupSettings>>& all) override {
    for (const auto& [e, s] : all)
      if (Status st = apply_group(e, s); !st) return st;
    return {};
  }
  Status remove_group(const std::string& e) override {
    if (Status st = op("remove_group", e); !st) return st;
    std::lock_guard lock(mu_);
    partitions_.erase(e);
    return {};
  }
  Status place(int pid, int tid, const TaskSettings& s) override {
    return op("place", ids(pid, tid) + " cpus=" + s.cpus.to_string() + " class=" + class_name(s.cls.cls) +
                           " prio=" + std::to_string(s.cls.rt_priority));
  }
  Status join_group(int pid, int tid, const std::string& e, const TaskSettings&) override {
    return op("join_group", ids(pid, tid) + " entity=" + e);
  }
  Result<TaskOrigin> capture_origin(int pid, int tid) override {
    if (Status st = op("capture_origin", ids(pid, tid)); !st) return st;
    TaskOrigin o;
    o.cpus = cpus_;
    return o;
  }
  Status restore(int pid, int tid, const TaskOrigin&) override { return op("restore", ids(pid, tid)); }
  Status teardown() override { return op("teardown", ""); }
  Status join_gang(const std::string& e, const std::string& g, int pid, int tid) override {
    if (Status st = check_entity(e); !st) return st;
    return op("join_gang", e + "/" + g + " " + ids(pid, tid));
  }
  Status isolate_threads(const std::string& e, const std::string& g, int pid) override {
    if (Status st = check_entity(e); !st) return st;
    return op("isolate_threads", e + "/" + g + " " + ids(pid, 0));
  }
  Status leave_gang(const std::string& e, const std::string& g, int pid, int tid) override {
    return op("leave_gang", e + "/" + g + " " + ids(pid, tid));
  }
  Status freeze_gang(const std::string& e, const std::string& g, bool frozen) override {
    return op(frozen ? "freeze_gang" : "thaw_gang", e + "/" + g);
  }
  Status remove_gang(const std::string& e, const std::string& g) override { return op("remove_gang", e + "/" + g); }
  Status thaw_all() override { return op("thaw_all", ""); }
  std::string freezer() const override { return "fake"; }

 private:
  static std::string ids(int pid, int tid) { return "pid=" + std::to_string(pid) + " tid=" + std::to_string(tid); }

  // Logs "NAME ARGS" (with " failed=ENAME" when an injected failure hits)
  // and returns the injected error, if any.
  Status op(const std::string& name, const std::string& args) {
    std::string line = args.empty() ? name : name + " " + args;
    int err = 0;
    for (const FailRule& r : rules_)
      if (r.op == name && (r.substr.empty() || line.find(r.substr) != std::string::npos)) {
        err = r.err;
        break;
      }
    std::lock_guard lock(mu_);
    if (log_fd_ >= 0) {
      std::string out = line + (err != 0 ? " failed=" + errno_name(err) : "") + "\n";
      // O_APPEND and one write per line: readers never see half a line.
      [[maybe_unused]] ssize_t n = ::write(log_fd_, out.data(), out.size());
    }
    if (err != 0) return KnobError{"fake " + name, args, "", err}.status();
    return {};
  }

  Options o_;
  std::vector<FailRule> rules_;
  CpuSet cpus_;
  int log_fd_;
  std::mutex mu_;
  std::map<std::string, std::string> partitions_;  // entity -> partition_name
};

}  // namespace

Result<std::unique_ptr<Glue>> make_fake(const Options& o) {
  auto rules = parse_fail(o.fake_fail);
  if (!rules) return rules.status();
  auto cpus = CpuSet::parse(o.fake_cpus);
  if (!cpus) return invalid("fake_cpus: " + cpus.status().message());
  if (cpus->empty()) return invalid("fake_cpus: empty");
  int fd = -1;
  if (!o.fake_log.empty()) {
    // The log is ours to create, unlike a knob.
    fd = ::open(o.fake_log.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return KnobError{"open", o.fake_log, "", errno}.status();
  }
  return std::unique_ptr<Glue>(std::make_unique<FakeGlue>(o, std::move(rules.value()), cpus.value(), fd));
}

}  // namespace usched::glue::detail
