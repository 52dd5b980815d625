#include "usched/gang.h"

#include <algorithm>
#include <cassert>
#include <deque>

namespace usched {

GangMatrix::GangMatrix(int vcpus) : vcpus_(vcpus) { assert(vcpus > 0 && "GangMatrix: vcpus > 0"); }

Status GangMatrix::add(const std::string& gang, int width) {
  if (width < 1 || width > vcpus_) {
    return invalid("gang '" + gang + "': width " + std::to_string(width) + " does not fit: the scheduler has " +
                   std::to_string(vcpus_) + " vcpu" + (vcpus_ == 1 ? "" : "s") + " (give --width 1.." +
                   std::to_string(vcpus_) + ")");
  }
  if (gangs_.count(gang)) return already_exists("gang '" + gang + "' already exists");
  gangs_[gang] = Gang{width, true, next_order_++};
  pack();
  return Status::ok();
}

Status GangMatrix::remove(const std::string& gang) {
  if (!gangs_.erase(gang)) return not_found("no gang '" + gang + "'");
  pack();
  return Status::ok();
}

Status GangMatrix::set_active(const std::string& gang, bool active) {
  auto it = gangs_.find(gang);
  if (it == gangs_.end()) return not_found("no gang '" + gang + "'");
  if (it->second.active != active) {
    it->second.active = active;
    pack();
  }
  return Status::ok();
}

int GangMatrix::width(const std::string& gang) const {
  auto it = gangs_.find(gang);
  return it == gangs_.end() ? 0 : it->second.width;
}

GangSlot GangMatrix::slot(const std::string& gang) const {
  auto it = slots_.find(gang);
  return it == slots_.end() ? GangSlot{} : it->second;
}

std::vector<int> GangMatrix::used_columns(int r) const {
  std::vector<int> out;
  for (const std::string& g : row(r)) {
    const auto& c = slots_.at(g).columns;
    out.insert(out.end(), c.begin(), c.end());
  }
  std::sort(out.begin(), out.end());
  return out;
}

void GangMatrix::pack() {
  slots_.clear();
  rows_.clear();
  runs_.clear();
  // First fit, widest first; equal widths in creation order so that a
  // repack moves as few gangs as possible.
  std::vector<std::pair<std::string, const Gang*>> order;
  for (const auto& [name, g] : gangs_)
    if (g.active) order.emplace_back(name, &g);
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    if (a.second->width != b.second->width) return a.second->width > b.second->width;
    return a.second->order < b.second->order;
  });
  std::vector<std::vector<bool>> busy;  // [row][column]
  for (const auto& [name, g] : order) {
    size_t r = 0;
    for (; r < busy.size(); ++r) {
      if (std::count(busy[r].begin(), busy[r].end(), false) >= g->width) break;
    }
    if (r == busy.size()) {
      busy.emplace_back(static_cast<size_t>(vcpus_), false);
      rows_.emplace_back();
    }
    GangSlot s;
    s.row = static_cast<int>(r);
    for (int c = 0; c < vcpus_ && static_cast<int>(s.columns.size()) < g->width; ++c) {
      if (!busy[r][static_cast<size_t>(c)]) {
        busy[r][static_cast<size_t>(c)] = true;
        s.columns.push_back(c);
      }
    }
    rows_[r].push_back(name);
    slots_[name] = std::move(s);
  }
  // Alternate scheduling: a gang also runs in every other row where all of
  // its columns are idle. Checked against the home gangs and the gangs
  // already added to that row, so no column is given twice.
  runs_.resize(rows_.size());
  for (size_t r = 0; r < rows_.size(); ++r) {
    std::vector<bool> used = busy[r];
    for (const std::string& g : rows_[r]) runs_[r].insert(g);
    for (const auto& [name, g] : order) {
      const GangSlot& s = slots_[name];
      if (static_cast<size_t>(s.row) == r) continue;
      bool fits = std::all_of(s.columns.begin(), s.columns.end(),
                              [&](int c) { return !used[static_cast<size_t>(c)]; });
      if (!fits) continue;
      for (int c : s.columns) used[static_cast<size_t>(c)] = true;
      runs_[r].insert(name);
    }
  }
}

// ---- rr ------------------------------------------------------------------------

namespace {

class RrPolicy final : public GangPolicy {
 public:
  const char* name() const override { return "rr"; }
  void reset(int rows) override {
    q_.clear();
    for (int r = 0; r < rows; ++r) q_.push_back(r);
  }
  void enqueue(int row) override {
    if (std::find(q_.begin(), q_.end(), row) == q_.end()) q_.push_back(row);
  }
  void dequeue(int row) override { q_.erase(std::remove(q_.begin(), q_.end(), row), q_.end()); }
  int next() override {
    if (q_.empty()) return -1;
    int r = q_.front();
    q_.pop_front();
    return r;
  }
  void tick(int row, Micros) override { enqueue(row); }
  void charge(int, Micros, Micros, Micros) override {}

 private:
  std::deque<int> q_;
};

class Bsd4Policy final : public GangPolicy {
 public:
  Bsd4Policy(int lwktpri, int vcpus) : base_(bsd4::base_queue(lwktpri)), vcpus_(std::max(1, vcpus)) {}
  const char* name() const override { return "bsd4"; }

  void reset(int rows) override {
    for (auto& q : queues_) q.clear();
    mask_ = 0;
    estcpu_.resize(static_cast<size_t>(rows), 0);
    queued_.assign(static_cast<size_t>(rows), false);
    for (int r = 0; r < rows; ++r) enqueue(r);
  }
  void enqueue(int row) override {
    if (row < 0 || static_cast<size_t>(row) >= queued_.size() || queued_[static_cast<size_t>(row)]) return;
    int q = queue_of(row);
    queues_[static_cast<size_t>(q)].push_back(row);
    mask_ |= 1u << q;
    queued_[static_cast<size_t>(row)] = true;
  }
  void dequeue(int row) override {
    if (row < 0 || static_cast<size_t>(row) >= queued_.size() || !queued_[static_cast<size_t>(row)]) return;
    for (int q = 0; q < bsd4::kQueues; ++q) {
      auto& d = queues_[static_cast<size_t>(q)];
      d.erase(std::remove(d.begin(), d.end(), row), d.end());
      if (d.empty()) mask_ &= ~(1u << q);
    }
    queued_[static_cast<size_t>(row)] = false;
  }
  int next() override {
    decay_until_now();
    int q = bsd4::find_first_set(mask_);
    if (q < 0) return -1;
    auto& d = queues_[static_cast<size_t>(q)];
    int r = d.front();
    d.pop_front();
    if (d.empty()) mask_ &= ~(1u << q);
    queued_[static_cast<size_t>(r)] = false;
    return r;
  }
  void tick(int row, Micros now) override {
    now_ = now;
    if (last_decay_ < 0) last_decay_ = now;
    enqueue(row);  // at the tail of its (new) queue: round robin among equals
  }
  void charge(int row, Micros cpu, Micros quantum, Micros now) override {
    now_ = now;
    if (last_decay_ < 0) last_decay_ = now;
    if (row < 0 || static_cast<size_t>(row) >= estcpu_.size() || quantum <= 0) return;
    // A full quantum on every vcpu of the entity adds kEstcpuPerQueue.
    const Micros full = quantum * vcpus_;
    int add = static_cast<int>((cpu * bsd4::kEstcpuPerQueue + full / 2) / full);
    int& e = estcpu_[static_cast<size_t>(row)];
    e = std::min(bsd4::kEstcpuMax, e + std::max(add, cpu > 0 ? 1 : 0));
  }

 private:
  int queue_of(int row) const {
    return std::min(bsd4::kQueues - 1, base_ + estcpu_[static_cast<size_t>(row)] / bsd4::kEstcpuPerQueue);
  }
  // schedcpu(): once a second, every row's usage decays by the load factor;
  // queued rows move to their new queue.
  void decay_until_now() {
    if (last_decay_ < 0) return;
    while (now_ - last_decay_ >= 1'000'000) {
      last_decay_ += 1'000'000;
      int load = 0;
      for (bool q : queued_) load += q ? 1 : 0;
      load = std::max(1, load + 1);  // the row that is running counts too
      std::vector<int> requeue;
      for (size_t r = 0; r < estcpu_.size(); ++r) {
        estcpu_[r] = bsd4::decay(estcpu_[r], load);
        if (queued_[r]) requeue.push_back(static_cast<int>(r));
      }
      for (int r : requeue) dequeue(r);
      for (int r : requeue) enqueue(r);
    }
  }

  int base_;
  int vcpus_;
  std::array<std::deque<int>, bsd4::kQueues> queues_;
  uint32_t mask_ = 0;
  std::vector<int> estcpu_;
  std::vector<bool> queued_;
  Micros now_ = 0;
  Micros last_decay_ = -1;
};

}  // namespace

namespace bsd4 {
int base_queue(int lwktpri) { return (31 - std::clamp(lwktpri, 0, 31)) / 4; }
int decay(int estcpu, int load) { return static_cast<int>(int64_t{estcpu} * 2 * load / (2 * load + 1)); }
int find_first_set(uint32_t mask) { return mask == 0 ? -1 : __builtin_ctz(mask); }
}  // namespace bsd4

std::unique_ptr<GangPolicy> make_rr_policy() { return std::make_unique<RrPolicy>(); }
std::unique_ptr<GangPolicy> make_bsd4_policy(int lwktpri, int vcpus) {
  return std::make_unique<Bsd4Policy>(lwktpri, vcpus);
}

Result<std::unique_ptr<GangPolicy>> make_gang_policy(std::string_view name, int lwktpri, int vcpus) {
  if (name.empty() || name == "rr") return make_rr_policy();
  if (name == "bsd4") return make_bsd4_policy(lwktpri, vcpus);
  return invalid("policy '" + std::string(name) + "' is not known (choose rr or bsd4)");
}

}  // namespace usched
