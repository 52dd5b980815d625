#include "engine.h"
#include "gang.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <google/protobuf/util/json_util.h>
#include <spdlog/spdlog.h>

namespace usched::daemon {
namespace {

constexpr int kStateVersion = 1;
constexpr int kDefaultLwktpri = 6;

v1::SchedClass to_proto_class(SchedClass c) {
  switch (c) {
    case SchedClass::kIdle: return v1::SCHED_CLASS_IDLE;
    case SchedClass::kNormal: return v1::SCHED_CLASS_NORMAL;
    case SchedClass::kRealtime: return v1::SCHED_CLASS_REALTIME;
  }
  return v1::SCHED_CLASS_UNSPECIFIED;
}

Result<std::optional<SchedClass>> from_proto_class(int c) {
  switch (c) {
    case v1::SCHED_CLASS_UNSPECIFIED: return std::optional<SchedClass>();
    case v1::SCHED_CLASS_IDLE: return std::optional<SchedClass>(SchedClass::kIdle);
    case v1::SCHED_CLASS_NORMAL: return std::optional<SchedClass>(SchedClass::kNormal);
    case v1::SCHED_CLASS_REALTIME: return std::optional<SchedClass>(SchedClass::kRealtime);
    default: return invalid("sched_class " + std::to_string(c) + " is not a known class");
  }
}

Result<PoolSpec> parse_pool(const std::string& pool) {
  // An empty pool means the whole parent, as "cpu*" does.
  if (pool.find_first_not_of(" \t") == std::string::npos) return PoolSpec::everything();
  return PoolSpec::parse(std::string_view(pool));
}

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string member_label(MemberKey k) {
  return k.tid ? "pid " + std::to_string(k.pid) + " tid " + std::to_string(k.tid)
               : "pid " + std::to_string(k.pid);
}

}  // namespace

Engine::Engine(asio::io_context& io, std::unique_ptr<glue::Glue> glue, EngineOptions o)
    : io_(io),
      glue_(std::move(glue)),
      opts_(std::move(o)),
      exits_(io, kExitPause, [this](int pid, int tid) { task_exited(MemberKey{pid, tid}); }),
      sweep_timer_(io),
      refresh_timer_(io) {}

namespace {
glue::Glue* g_glue_to_thaw = nullptr;

// An exception that escapes is a bug, and std::terminate ends the daemon
// at once, with no stop path run: thaw every gang first, so that no
// process stays frozen behind a dead uschedd (the next start thaws too).
[[noreturn]] void thaw_and_abort() {
  std::fputs("uschedd: fatal: uncaught exception; thawing every gang before aborting\n", stderr);
  if (g_glue_to_thaw) (void)g_glue_to_thaw->thaw_all();
  std::abort();
}
}  // namespace

Engine::~Engine() {
  joiner_.join();
  if (g_glue_to_thaw == glue_.get()) g_glue_to_thaw = nullptr;
  glue_->attach_guardian(nullptr);
  guardian_watch_.reset();
  guardian_.reset();
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

// ---- start and stop -------------------------------------------------------


Status Engine::start() {
  std::error_code ec;
  std::filesystem::create_directories(opts_.state_dir, ec);
  if (ec) {
    return precondition("cannot create state directory " + opts_.state_dir + ": " + ec.message());
  }
  // Whoever can write the state directory can rewrite the tree (and so
  // move any process) at our next start: refuse one other users can write.
  if (struct stat st{}; ::stat(opts_.state_dir.c_str(), &st) == 0 &&
                        (st.st_mode & S_IWOTH || (st.st_uid != ::geteuid()))) {
    return precondition("state directory " + opts_.state_dir +
                        " is writable by other users or not owned by uschedd's user; "
                        "chown it to that user and chmod go-w it");
  }
  // Before anything can be frozen, the guardian that thaws it if we die.
  if (Status s = start_guardian(); !s) return s;
  if (Status s = glue_->setup(); !s) return s;
  g_glue_to_thaw = glue_.get();
  std::set_terminate(thaw_and_abort);
  auto present = glue_->present_cpus();
  if (!present) return present.status();
  auto online = glue_->online_cpus();
  if (!online) return online.status();
  tree_ = std::make_unique<Tree>(*present, *online & *present);
  gangs_ = std::make_unique<Gangs>(io_, *glue_, proc_, tree_);
  spdlog::info("glue {}: cpus present {}, online {}", glue_->name(), present->to_string(),
               online->to_string());

  const std::string path = opts_.state_dir + "/state.json";
  std::ifstream in(path);
  if (in) {
    std::stringstream ss;
    ss << in.rdbuf();
    if (Status s = load_state(ss.str()); !s) {
      // Never start by silently forgetting the tree: keep the file aside
      // and refuse, so the operator decides.
      const std::string bad = corrupt_file_.empty() ? path : corrupt_file_;
      const std::string aside = bad + ".corrupt-" + std::to_string(now_us() / 1000000);
      std::filesystem::rename(bad, aside, ec);
      return precondition("state file " + bad + " is unreadable: " + s.message() +
                          "; it was kept as " + aside +
                          "; repair it and move it back, or remove it to start empty");
    }
  } else if (opts_.defaults) {
    if (Status s = create_defaults(); !s) return s;
  }
  if (Status s = sync_groups(); !s) return s;
  {
    // Groups of schedulers the state no longer names (uschedd died between
    // recording a destroy and removing the group) go now.
    std::set<std::string> names;
    tree_->for_each([&](const Entity& e) {
      if (!e.is_root()) names.insert(e.name());
    });
    if (Status s = glue_->prune_groups(names); !s) spdlog::warn("removing groups no scheduler names: {}", s.message());
  }
  reconcile_members();
  // Start from one fresh members.json and an empty members.log.
  if (Status s = write_members(); !s) spdlog::error("state: {}", s.message());
  save_state();
  sweep_timer_.expires_after(std::chrono::seconds(1));
  sweep_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) sweep();
  });
  return Status::ok();
}

Status Engine::start_guardian() {
  // The fake glue freezes nothing (and service tests run many daemons).
  if (glue_->kind() == glue::Kind::kFake) return Status::ok();
  // The lock is the directory's own (flock on a directory fd): nothing to
  // create, so a read-only state disk does not stop a start.
  const std::string& lock = opts_.state_dir;
  lock_fd_ = ::open(lock.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (lock_fd_ < 0) return precondition("cannot open state directory " + lock + ": " + std::strerror(errno));
  // Held by uschedd and its guardian: the guardian of an uschedd that just
  // died may still be thawing; wait for it (it takes milliseconds) rather
  // than freeze gangs it is about to thaw.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK && errno != EINTR) {
      return precondition("cannot lock state directory " + lock + ": " + std::strerror(errno));
    }
    if (std::chrono::steady_clock::now() > until) {
      return precondition("state directory " + lock + " is in use: another uschedd (or the guardian of one) holds its " +
                          "lock (flock); stop it first, or give this one its own --state-dir");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  auto g = glue::Guardian::spawn("/proc/self/exe", proc_.root(), lock_fd_);
  if (!g) return precondition("cannot start the guardian: " + g.status().message());
  guardian_ = std::move(*g);
  guardian_->close_on_fatal_signals();
  glue_->attach_guardian(guardian_.get());
  spdlog::info("guardian: pid {} thaws every gang if uschedd dies", guardian_->pid());
  watch_guardian();
  return Status::ok();
}

void Engine::watch_guardian() {
  guardian_watch_.reset();
  if (!guardian_ || guardian_->pidfd() < 0) return;
  const int fd = ::dup(guardian_->pidfd());
  if (fd < 0) return;
  guardian_watch_ = std::make_unique<asio::posix::stream_descriptor>(io_, fd);
  guardian_watch_->async_wait(asio::posix::stream_descriptor::wait_read, [this](const boost::system::error_code& ec) {
    if (ec || stopping_ || !guardian_) return;
    // Without it a crash could leave gangs frozen: start another at once.
    auto how = guardian_->respawn();
    if (!how) {
      spdlog::error("guardian: it is gone and cannot be started again: {}; gangs may stay frozen if uschedd dies",
                    how.status().message());
      return;
    }
    spdlog::error("guardian: it {}; started again as pid {}", *how, guardian_->pid());
    watch_guardian();
  });
}

Status Engine::create_defaults() {
  struct Def {
    const char* name;
    int pri;
  };
  for (Def d : {Def{"IDLE", 4}, Def{"NORM", 6}, Def{"REAL", 8}}) {
    EntitySpec s;
    s.name = d.name;
    s.lwktpri = d.pri;
    auto r = tree_->create(s);
    if (!r) return r.status();
  }
  spdlog::info("no state yet: created the default schedulers IDLE, NORM, REAL on cpu*");
  return Status::ok();
}

void Engine::stop(bool cleanup) {
  stopping_ = true;
  if (gangs_) gangs_->stop();  // nothing stays frozen, whatever follows
  guardian_watch_.reset();     // its exit from now on is expected
  sweep_timer_.cancel();
  refresh_timer_.cancel();
  exits_.stop();
  joiner_.join();  // pending cgroup moves finish before anything is removed
  // Answers waiting for a move (Bind, the placement socket) go now: a move
  // that had not started will not run.
  while (!placed_waiters_.empty()) fire_placed(placed_waiters_.begin()->first);
  if (cleanup) {
    for (auto& [key, t] : tracked_) {
      if (Status s = glue_->restore(key.pid, key.tid, t.origin); !s) {
        spdlog::warn("returning {}: {}", member_label(key), s.message());
      }
    }
    tracked_.clear();
    // The tree keeps its schedulers for the next start, but not members.
    std::vector<MemberKey> keys;
    tree_->for_each([&](const Entity& e) {
      for (auto& [k, m] : e.members()) keys.push_back(k);
    });
    for (MemberKey k : keys) (void)tree_->unbind(k);
    save_state();
    if (Status s = glue_->teardown(); !s) spdlog::error("cleanup: {}", s.message());
    else spdlog::info("cleanup: members returned, cgroups removed");
  } else {
    save_state();
    tracked_.clear();  // closes the pidfds; members stay where they are
  }
}

// ---- authorization ----------------------------------------------------------

Status Engine::check_writer(const Caller& c, const std::string& what) const {
  if (c.root()) return Status::ok();
  return denied("only root may " + what + " (you are uid " + std::to_string(c.uid) +
                "); everyone may read");
}

// ---- schedulers ---------------------------------------------------------------

Result<v1::Scheduler> Engine::create(const Caller& c, const v1::SchedulerSpec& spec) {
  EntitySpec es;
  es.name = spec.name();
  if (es.name.empty()) return invalid("a scheduler needs a name");
  if (Status s = validate_name(es.name); !s) return s;
  const auto slash = es.name.rfind('/');
  const Entity* parent = tree_->find(slash == std::string::npos ? "" : es.name.substr(0, slash));
  if (!parent) return not_found("no parent scheduler '" + es.name.substr(0, slash) + "' for '" + es.name + "'");
  if (Status s = check_below(c, *parent, "create '" + es.name + "'"); !s) return s;
  auto pool = parse_pool(spec.pool());
  if (!pool) return invalid("pool '" + spec.pool() + "': " + pool.status().message());
  es.pool = *pool;
  if (spec.vcpus() < 0) return invalid("vcpus " + std::to_string(spec.vcpus()) + " is negative");
  es.vcpus = spec.vcpus();
  es.lwktpri = spec.has_lwktpri() ? spec.lwktpri() : kDefaultLwktpri;
  auto cls = from_proto_class(spec.sched_class());
  if (!cls) return cls.status();
  es.class_override = *cls;
  es.locked = spec.locked();
  // isolated implies exclusive (as the line syntax has it).
  es.exclusive = spec.exclusive() || spec.isolated();
  es.isolated = spec.isolated();
  es.owner_uid = c.uid;
  es.owner_gid = c.gid;
  es.allow_realtime = spec.allow_realtime();
  if (Status s = check_privileged_spec(c, *parent, es); !s) return s;
  if (Status s = check_entity_limit(c.uid, 1); !s) return s;

  const v1::StateFile before = snapshot();
  auto r = tree_->create(es);
  if (!r) return r.status();
  if (Status s = commit(before); !s) return s;
  if (Status s = sync_groups(); !s) {
    // Nothing half-made: undo the tree change and the cgroup.
    (void)tree_->destroy(es.name, false);
    (void)glue_->remove_group(es.name);
    (void)sync_groups();
    save_state();
    return s;
  }
  reconcile_members();  // an exclusive entity takes CPUs from others
  const Entity* e = tree_->find(es.name);
  publish(v1::Event::SCHEDULER_CREATED, es.name, 0, 0, "cpus " + e->effective().to_string());
  spdlog::info("created {} (cpus {}, {} vcpus, lwktpri {})", es.name, e->effective().to_string(),
               e->vcpu_count(), es.lwktpri);
  return to_proto(*e);
}

Result<v1::Scheduler> Engine::update(const Caller& c, const v1::SchedulerSpec& spec,
                                     const std::vector<std::string>& mask) {
  const Entity* e = tree_->find(spec.name());
  if (spec.name().empty()) return invalid("the root cannot be changed; name a scheduler");
  if (!e) return not_found("no scheduler named '" + spec.name() + "'");
  if (Status s = check_below(c, *e->parent(), "change '" + spec.name() + "'"); !s) return s;
  if (mask.empty()) {
    return invalid("nothing to update: name at least one of pool, vcpus, lwktpri, sched_class, "
                   "locked, exclusive, isolated");
  }
  EntityUpdate u;
  for (const std::string& f : mask) {
    if (f == "pool") {
      auto pool = parse_pool(spec.pool());
      if (!pool) return invalid("pool '" + spec.pool() + "': " + pool.status().message());
      u.pool = *pool;
    } else if (f == "vcpus") {
      if (spec.vcpus() < 0) return invalid("vcpus " + std::to_string(spec.vcpus()) + " is negative");
      u.vcpus = spec.vcpus();
    } else if (f == "lwktpri") {
      u.lwktpri = spec.has_lwktpri() ? spec.lwktpri() : kDefaultLwktpri;
    } else if (f == "sched_class") {
      auto cls = from_proto_class(spec.sched_class());
      if (!cls) return cls.status();
      u.class_override = *cls;
    } else if (f == "locked") {
      u.locked = spec.locked();
    } else if (f == "exclusive") {
      u.exclusive = spec.exclusive();
    } else if (f == "isolated") {
      u.isolated = spec.isolated();
    } else if (f == "allow_realtime") {
      u.allow_realtime = spec.allow_realtime();
    } else {
      return invalid("unknown field '" + f +
                     "' in update_mask (pool, vcpus, lwktpri, sched_class, locked, exclusive, isolated)");
    }
  }
  // isolated implies exclusive; shared ends isolation.
  if (u.isolated && *u.isolated) u.exclusive = true;
  if (u.exclusive && !*u.exclusive && !u.isolated) u.isolated = false;
  const EntitySpec old = e->spec();
  if (!c.root()) {
    EntitySpec next = old;
    if (u.lwktpri) next.lwktpri = *u.lwktpri;
    if (u.class_override) next.class_override = *u.class_override;
    if (u.exclusive) next.exclusive = *u.exclusive;
    if (u.isolated) next.isolated = *u.isolated;
    if (u.allow_realtime) next.allow_realtime = *u.allow_realtime;
    if (Status s = check_privileged_spec(c, *e->parent(), next); !s) return s;
  }
  const v1::StateFile before = snapshot();
  auto r = tree_->update(spec.name(), u);
  if (!r) return r.status();
  if (Status s = commit(before); !s) return s;
  Status s = sync_groups();
  // A member the kernel refuses to move (place) fails the update too: the
  // scheduler goes back to what it was, and so do the members already moved.
  if (s) s = reconcile_members();
  if (!s) {
    EntityUpdate back;
    back.pool = old.pool;
    back.vcpus = old.vcpus;
    back.lwktpri = old.lwktpri;
    back.class_override = old.class_override;
    back.locked = old.locked;
    back.exclusive = old.exclusive;
    back.isolated = old.isolated;
    back.allow_realtime = old.allow_realtime;
    (void)tree_->update(spec.name(), back);
    (void)sync_groups();
    (void)reconcile_members();
    save_state();
    return s;
  }
  e = tree_->find(spec.name());
  publish(v1::Event::SCHEDULER_UPDATED, spec.name(), 0, 0, "cpus " + e->effective().to_string());
  spdlog::info("updated {} (cpus {}, {} vcpus)", spec.name(), e->effective().to_string(),
               e->vcpu_count());
  return to_proto(*e);
}

Result<v1::DestroySchedulerResponse> Engine::destroy(const Caller& c, const std::string& name,
                                                     bool force) {
  if (name.empty()) return invalid("the root cannot be destroyed; name a scheduler");
  if (const Entity* e = tree_->find(name)) {
    if (Status s = check_below(c, *e->parent(), "destroy '" + name + "'"); !s) return s;
  }
  const v1::StateFile before = snapshot();
  auto r = tree_->destroy(name, force);
  if (!r) return r.status();
  if (Status s = commit(before); !s) return s;
  for (const Member& m : r->released) release(m);
  // The destroyed schedulers' gangs go now, their groups before the
  // scheduler's own (on cgroup v2 a gang's group lies inside it).
  if (gangs_) gangs_->prune();
  const std::set<std::string> config_before = from_config_;
  for (const std::string& n : r->destroyed) {
    Status s = glue_->remove_group(n);
    if (!s && r->released.empty()) {
      // The kernel keeps the group (EBUSY: a task we do not know of is in
      // it): the scheduler stays too, so the caller can see and retry.
      // Groups already removed come back with sync_groups. Members that
      // were returned to where they came from cannot be taken back, so
      // with those the destroy goes on and only warns.
      spdlog::warn("destroy {}: removing the group of {}: {}", name, n, s.message());
      restore_tree(before);
      from_config_ = config_before;
      save_state();
      if (Status g = sync_groups(); !g) spdlog::warn("after a failed destroy of {}: {}", name, g.message());
      reconcile_members();
      return Status(s.code(), "destroy '" + name + "': " + s.message());
    }
    if (!s) spdlog::warn("removing the group of {}: {}", n, s.message());
    from_config_.erase(n);
  }
  if (Status s = sync_groups(); !s) spdlog::warn("after destroying {}: {}", name, s.message());
  reconcile_members();  // moved members follow their new entity
  v1::DestroySchedulerResponse resp;
  for (const std::string& n : r->destroyed) {
    resp.add_destroyed(n);
    publish(v1::Event::SCHEDULER_DESTROYED, n);
  }
  resp.set_members_moved(static_cast<int>(r->moved.size()));
  spdlog::info("destroyed {} ({} entities, {} members moved to '{}', {} released)", name,
               r->destroyed.size(), r->moved.size(), r->moved_to, r->released.size());
  return resp;
}

Result<v1::Scheduler> Engine::get(const std::string& name) const {
  if (name.empty()) return invalid("name a scheduler (the root has no record)");
  const Entity* e = tree_->find(name);
  if (!e) return not_found("no scheduler named '" + name + "'");
  return to_proto(*e);
}

v1::ListSchedulersResponse Engine::list() const {
  v1::ListSchedulersResponse resp;
  tree_->for_each([&](const Entity& e) {
    if (!e.is_root()) *resp.add_schedulers() = to_proto(e);
  });
  resp.set_glue(glue_->name());
  resp.set_online_cpus(tree_->root().effective().to_string());
  return resp;
}

// ---- members -------------------------------------------------------------------

Result<glue::TaskInfo> Engine::check_task(int pid, int tid) const {
  if (pid <= 0) return invalid("pid " + std::to_string(pid) + " is not a process id (give pid > 0)");
  if (tid < 0) return invalid("tid " + std::to_string(tid) + " is negative");
  if (pid == 1) return invalid("pid 1 (init) cannot be bound: moving it would move the whole system");
  if (pid == getpid()) return invalid("pid " + std::to_string(pid) + " is uschedd itself");
  auto info = proc_.task(pid, tid);
  if (!info) {
    return not_found(tid ? "no thread " + std::to_string(tid) + " in process " + std::to_string(pid)
                         : "no process " + std::to_string(pid));
  }
  if (info->kernel_thread) {
    return invalid("pid " + std::to_string(pid) + " (" + info->comm +
                   ") is a kernel thread; only user tasks can be bound");
  }
  return info;
}

Result<glue::TaskInfo> Engine::check_member_task(MemberKey key, bool need_uid, bool* cached) const {
  *cached = false;
  auto it = tracked_.find(key);
  const Entity* was = it == tracked_.end() ? nullptr : tree_->entity_of(key);
  if (!was || !it->second.exit_watch || !glue::pidfd_alive(it->second.exit_watch->fd())) {
    return check_task(key.pid, key.tid);
  }
  const Member& m = was->members().at(key);
  if (!need_uid && it->second.ppid > 0) {
    glue::TaskInfo info;
    info.uid = m.uid;
    info.ppid = it->second.ppid;
    info.start_time = m.start_time;
    *cached = true;
    return info;
  }
  auto info = proc_.task_status(key.pid, key.tid);
  if (!info) return check_task(key.pid, key.tid);  // which names what is wrong
  info->start_time = m.start_time;
  return info;
}

void Engine::refresh_later(MemberKey key) {
  const bool armed = !stale_.empty();
  stale_.insert(key);
  if (armed) return;
  refresh_timer_.expires_after(kRefreshDelay);
  refresh_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopping_) return;
    auto keys = std::move(stale_);
    stale_.clear();
    for (MemberKey k : keys) refresh_member(k);
  });
}

void Engine::refresh_member(MemberKey key) {
  auto it = tracked_.find(key);
  const Member* m = tree_->member(key);
  if (stopping_ || it == tracked_.end() || m == nullptr) return;
  auto info = proc_.task_status(key.pid, key.tid);
  if (!info) return;  // gone: its exit is handled by the pidfd watch
  it->second.ppid = info->ppid;
  if (info->uid == m->uid) return;
  spdlog::info("{} now belongs to uid {} (was {})", member_label(key), info->uid, m->uid);
  (void)tree_->set_member_uid(key, info->uid);
  if (Status s = log_member(key); !s) spdlog::error("state: {}", s.message());
}

Result<v1::BindResponse> Engine::bind(const Caller& c, const v1::BindRequest& r, bool own_only) {
  if (r.name().empty()) return invalid("name the scheduler to bind to");
  const Entity* target = tree_->find(r.name());
  if (!target) {
    if (Status s = validate_name(r.name()); !s) return s;
    return not_found("no scheduler named '" + r.name() + "'");
  }
  const MemberKey key{r.pid(), r.tid()};
  bool cached = false;
  auto info = check_member_task(key, !c.root(), &cached);
  if (!info) return info.status();
  if (own_only && key.pid != c.pid && info->ppid != c.pid) {
    return invalid("the placement socket places the process that connects (pid " + std::to_string(c.pid) +
                   "), its threads or a child it forked, not pid " + std::to_string(key.pid) +
                   ": use the Bind RPC");
  }
  if (Status s = check_bind(c, *target, info->uid); !s) return s;
  if (Status s = check_member_limit(*target, key); !s) return s;

  // A pid reused by a new process is a new member, never the old one.
  if (auto it = tracked_.find(key); it != tracked_.end()) {
    const Entity* was = tree_->entity_of(key);
    if (was && was->members().at(key).start_time != info->start_time) {
      (void)tree_->unbind(key);
      tracked_.erase(it);
    }
  }

  const Entity* prev = tree_->entity_of(key);
  std::optional<Member> prev_member;
  if (prev) prev_member = prev->members().at(key);
  const bool fresh = !tracked_.count(key);
  glue::TaskOrigin origin;
  if (fresh) {
    auto o = glue_->capture_origin(key.pid, key.tid);
    if (!o) return o.status();
    origin = *o;
  }

  // Started bound: the caller binds itself (`usched run`) or the child it
  // forked (rfork). The back end may leave anything else in its own
  // cgroup (the systemd driver: a process of another unit) and says so.
  const bool started = c.pid > 0 && (c.pid == key.pid || info->ppid == c.pid);
  const std::string note = glue_->note_bind(key.pid, key.tid, started);

  Member m;
  m.key = key;
  m.start_time = info->start_time;
  m.uid = info->uid;
  m.requested_vcpu = r.has_vcpu() ? r.vcpu() : -1;
  if (r.has_vcpu() && r.vcpu() < 0) return invalid("vcpu " + std::to_string(r.vcpu()) + " is negative");
  auto b = tree_->bind(r.name(), m);
  if (!b) return b.status();

  Tracked& t = tracked_[key];
  if (fresh) {
    released_while_moving_.erase(key);  // bound again: the tree decides now
    t.origin = origin;
    t.generation = next_generation_++;
  }
  // Nothing changes on error: the member goes back where it was.
  auto undo = [&] {
    if (prev_member) {
      (void)tree_->bind(prev->name(), *prev_member);
    } else {
      (void)tree_->unbind(key);
      tracked_.erase(key);
    }
  };
  if (Status s = log_member(key); !s) {
    spdlog::error("state: {}", s.message());
    undo();
    return s;
  }
  const Entity* e = tree_->entity_of(key);
  const Member& placed = e->members().at(key);
  if (Status s = place_member(placed, *e, t); !s) {
    undo();
    if (Status w = log_member(key); !w) spdlog::error("state: {}", w.message());
    return s;
  }
  if (fresh) watch_exit(key, t);
  join_later(placed, *e);
  if (cached) {
    refresh_later(key);
  } else {
    t.ppid = info->ppid;
  }

  v1::BindResponse resp;
  auto* pm = resp.mutable_member();
  pm->set_pid(key.pid);
  pm->set_tid(key.tid);
  pm->set_vcpu(placed.vcpu);
  pm->set_start_time(placed.start_time);
  pm->set_uid(placed.uid);
  pm->set_cpus(e->cpus_for(placed).to_string());
  resp.set_scheduler(e->name());
  resp.set_note(note);
  publish(v1::Event::MEMBER_BOUND, e->name(), key.pid, key.tid, "cpus " + pm->cpus());
  // Logged after this handler: the answer does not wait for the line.
  asio::post(io_, [key, name = e->name(), cpus = pm->cpus(), vcpu = placed.vcpu, note] {
    spdlog::info("bound {} to {} (cpus {}, vcpu {}){}{}", member_label(key), name, cpus, vcpu,
                 note.empty() ? "" : "; ", note);
  });
  return resp;
}

Result<v1::UnbindResponse> Engine::unbind(const Caller& c, int pid, int tid) {
  if (pid <= 0) return invalid("pid " + std::to_string(pid) + " is not a process id (give pid > 0)");
  const MemberKey key{pid, tid};
  const Entity* e = tree_->entity_of(key);
  if (!e) {
    return not_found(member_label(key) + " is not bound to any scheduler");
  }
  const Member m = e->members().at(key);
  if (Status s = check_bind(c, *e, m.uid); !s) return s;
  const std::string name = e->name();
  (void)tree_->unbind(key);
  if (Status s = log_member(key); !s) {
    spdlog::error("state: {}", s.message());
    (void)tree_->bind(name, m);
    return s;
  }
  // A task the kernel refuses to return stays bound, so the caller can
  // retry: nothing changed. One that is gone (ESRCH), or whose origin
  // cgroup is (ENOENT), has nothing left to return. A gang member leaves
  // its freezer before it is returned (release), so it is returned there.
  bool restored = false;
  if (auto it = tracked_.find(key); it != tracked_.end() && !(gangs_ && !gangs_->gang_of(name, key).empty())) {
    Status s = glue_->restore(pid, tid, it->second.origin);
    if (!s && s.code() != Code::kNotFound) {
      (void)tree_->bind(name, m);
      if (Status w = log_member(key); !w) spdlog::error("state: {}", w.message());
      return Status(s.code(), "unbind " + member_label(key) + ": " + s.message());
    }
    restored = true;
  }
  release(m, restored);
  publish(v1::Event::MEMBER_UNBOUND, name, pid, tid);
  spdlog::info("unbound {} from {}", member_label(key), name);
  v1::UnbindResponse resp;
  resp.set_scheduler(name);
  return resp;
}

void Engine::release(const Member& m, bool restored) {
  if (gangs_) gangs_->forget(m.key);  // out of its gang's freezer before it is returned
  auto it = tracked_.find(m.key);
  if (it == tracked_.end()) return;
  if (!restored) {
    if (Status s = glue_->restore(m.key.pid, m.key.tid, it->second.origin); !s) {
      spdlog::warn("returning {}: {}", member_label(m.key), s.message());
    }
  }
  // A cgroup move still on its way would put it back into the group (and
  // the group's CPUs): return it once more when that move is done.
  if (it->second.moving) released_while_moving_[m.key] = it->second.origin;
  tracked_.erase(it);
}

Status Engine::place_member(const Member& m, const Entity& e, Tracked& t) {
  glue::TaskSettings s{e.cpus_for(m), e.class_params()};
  const std::string cpus = s.cpus.to_string();
  if (cpus == t.placed_cpus && s.cls.cls == t.placed_class && s.cls.rt_priority == t.placed_prio) {
    return Status::ok();
  }
  Status st = glue_->place(m.key.pid, m.key.tid, s);
  if (!st && t.joined != e.name()) {
    // The member still sits in the group of another entity, or in a cgroup
    // of its own that lacks the CPUs (outside a cgroup v2 partition that
    // holds them), and the kernel refuses an affinity outside the task's
    // current cpuset (EINVAL when the old and new CPUs do not meet). Only
    // then does the caller wait for the cgroup move: into the new group
    // first, then place again.
    if (Status j = glue_->join_group(m.key.pid, m.key.tid, e.name(), s); !j) return j;
    t.joined = e.name();
    st = glue_->place(m.key.pid, m.key.tid, s);
  }
  if (!st) return st;
  t.placed_cpus = cpus;
  t.placed_class = s.cls.cls;
  t.placed_prio = s.cls.rt_priority;
  if (m.key.tid == 0) {
    // Placing a whole process overwrote its separately bound threads:
    // those follow their own entity again.
    for (auto it = tracked_.upper_bound(m.key); it != tracked_.end() && it->first.pid == m.key.pid;
         ++it) {
      it->second.placed_cpus.clear();
    }
  }
  return Status::ok();
}

Status Engine::reconcile_members() {
  Status first = Status::ok();
  for (auto& [key, t] : tracked_) {
    const Entity* e = tree_->entity_of(key);
    if (!e) continue;
    const Member& m = e->members().at(key);
    const SchedClass before = t.placed_class;
    if (Status s = place_member(m, *e, t); !s) {
      spdlog::warn("placing {} in {}: {}", member_label(key), e->name(), s.message());
      // A task that exited meanwhile is not a failure: its exit watch
      // takes it out of the tree.
      if (first && s.code() != Code::kNotFound) {
        first = Status(s.code(), "placing " + member_label(key) + " in " + e->name() + ": " + s.message());
      }
      continue;
    }
    if (t.joined != e->name() || before != t.placed_class) join_later(m, *e);
  }
  return first;
}

void Engine::join_later(const Member& m, const Entity& e) {
  auto it = tracked_.find(m.key);
  if (it == tracked_.end()) return;
  it->second.joined = e.name();
  // One move per member at a time: a member rebound faster than cgroup
  // moves complete (each waits ~10 ms for RCU) gets one move to wherever
  // the tree says once the running one is done, not a growing queue.
  if (it->second.moving) return;
  it->second.moving = true;
  glue::TaskSettings s{e.cpus_for(m), e.class_params()};
  const MemberKey key = m.key;
  const std::string name = e.name();
  glue::Glue* g = glue_.get();
  auto move = [this, g, key, name, s] {
    Status st = g->join_group(key.pid, key.tid, name, s);
    asio::post(io_, [this, key, name, cls = s.cls.cls, st] {
      if (stopping_) return;
      auto it = tracked_.find(key);
      if (it == tracked_.end()) {
        if (auto r = released_while_moving_.find(key); r != released_while_moving_.end()) {
          if (Status s = glue_->restore(key.pid, key.tid, r->second); !s) {
            spdlog::warn("returning {} after a late cgroup move: {}", member_label(key), s.message());
          }
          released_while_moving_.erase(r);
        }
        return fire_placed(key);
      }
      it->second.moving = false;
      if (!st) spdlog::warn("moving {} into the cgroup of {}: {}", member_label(key), name, st.message());
      const Entity* e = tree_->entity_of(key);
      if (!e) return fire_placed(key);
      if (e->name() != name || e->class_params().cls != cls) {
        // Rebound or re-prioritised meanwhile: follow the tree.
        join_later(e->members().at(key), *e);
        return;
      }
      if (!st) return fire_placed(key);
      // The cgroup move reset the affinity to the group's CPUs (cpuset
      // attach). When the member runs on all of them and is in no gang
      // (whose spread is per thread), that is already what the tree says;
      // otherwise place again from what the tree says now.
      if (!move_widens(*e, key)) return fire_placed(key);
      const Member& now = e->members().at(key);
      it->second.placed_cpus.clear();
      (void)place_member(now, *e, it->second);
      if (gangs_) gangs_->replaced(key);  // the move also undid the gang's spread
      fire_placed(key);
    });
  };
  // Handed to the joiner once the strand is done with what it runs now (a
  // Bind's answer included), so that the joiner's wake-up and its cgroup
  // write do not compete with that answer for the CPUs.
  asio::post(io_, [this, key, move = std::move(move)]() mutable {
    if (stopping_) {
      if (auto it = tracked_.find(key); it != tracked_.end()) it->second.moving = false;
      return fire_placed(key);
    }
    asio::post(joiner_, std::move(move));
  });
}

void Engine::when_placed(MemberKey key, std::function<void()> fn) {
  auto it = tracked_.find(key);
  const Entity* e = tree_->entity_of(key);
  if (it == tracked_.end() || !it->second.moving || e == nullptr || !move_widens(*e, key)) return fn();
  placed_waiters_[key].push_back(std::move(fn));
}

bool Engine::move_widens(const Entity& e, MemberKey key) const {
  // A gang's spread is per thread; otherwise the member's own CPUs.
  const bool spread = gangs_ && !gangs_->gang_of(e.name(), key).empty();
  return spread || e.cpus_for(e.members().at(key)) != e.runnable();
}

void Engine::fire_placed(MemberKey key) {
  auto it = placed_waiters_.find(key);
  if (it == placed_waiters_.end()) return;
  auto fns = std::move(it->second);
  placed_waiters_.erase(it);
  for (auto& fn : fns) fn();
}

void Engine::watch_exit(MemberKey key, Tracked& t) {
  auto fd = glue::PidFd::open(key.pid, key.tid);
  if (!fd) {
    spdlog::warn("no pidfd for {} ({}); the 1 s sweep will notice its exit", member_label(key),
                 fd.status().message());
    return;
  }
  auto w = exits_.watch(std::move(*fd), key.pid, key.tid);
  if (!w) {
    spdlog::warn("no exit watch for {} ({}); the 1 s sweep will notice its exit", member_label(key),
                 w.status().message());
    return;
  }
  t.exit_watch = std::move(*w);
}

void Engine::task_exited(MemberKey key) {
  // A pidfd polls readable once the task has exited (a zombie counts). A
  // replaced pidfd leaves the watch before it closes: this is the current
  // one, asked again all the same.
  auto it = tracked_.find(key);
  if (it == tracked_.end() || !it->second.exit_watch) return;
  pollfd p{it->second.exit_watch->fd(), POLLIN, 0};
  if (::poll(&p, 1, 0) != 1 || !(p.revents & POLLIN)) return;
  member_exited(key, it->second.generation);
}

void Engine::member_exited(MemberKey key, uint64_t generation) {
  if (stopping_) return;
  auto it = tracked_.find(key);
  if (it == tracked_.end() || it->second.generation != generation) return;
  const Entity* e = tree_->entity_of(key);
  const std::string name = e ? e->name() : "";
  if (gangs_) gangs_->forget(key);  // an exited member leaves its gang at once
  (void)tree_->unbind(key);
  tracked_.erase(it);
  // No members.log line: a start-up drops a recorded member whose pid is
  // gone or names another process (its start time differs), so the line
  // would change nothing; a short-lived child of rfork is spared the write.
  publish(v1::Event::MEMBER_EXITED, name, key.pid, key.tid);
  spdlog::info("{} exited; removed from {}", member_label(key), name);
}

void Engine::sweep() {
  if (stopping_) return;
  // A safety net behind the pidfd watches: members whose task is gone or
  // is a different process now (pid reuse), and CPU hotplug.
  std::vector<std::pair<MemberKey, uint64_t>> gone;
  for (auto& [key, t] : tracked_) {
    // A pidfd reports the exit (and so comes before any reuse of the pid):
    // only members without one are read here, so a sweep of 10000 members
    // costs nothing when the kernel gives pidfds.
    if (t.exit_watch) continue;
    const Entity* e = tree_->entity_of(key);
    if (!e) continue;
    auto info = proc_.task(key.pid, key.tid);
    if (!info || info->start_time != e->members().at(key).start_time || info->exited()) {
      gone.emplace_back(key, t.generation);
    }
  }
  for (auto& [key, gen] : gone) member_exited(key, gen);
  if (auto online = glue_->online_cpus(); online && tree_) {
    if (*online != tree_->root().effective()) {
      spdlog::info("online cpus now {}", online->to_string());
      tree_->set_online(*online);
      if (Status s = sync_groups(); !s) spdlog::warn("after hotplug: {}", s.message());
      reconcile_members();
    }
  }
  // CPU time per scheduler (stats.cc), a read of /proc per member: only
  // while someone looks (usched top, a metrics scraper).
  if (std::chrono::steady_clock::now() < stats_wanted_until_) account();
  sweep_timer_.expires_after(std::chrono::seconds(1));
  sweep_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) sweep();
  });
}

Status Engine::sync_groups() {
  std::vector<std::pair<std::string, glue::GroupSettings>> all;
  tree_->for_each([&](const Entity& e) {
    if (e.is_root()) return;
    const glue::Partition part = e.spec().isolated    ? glue::Partition::kIsolated
                                 : e.spec().exclusive ? glue::Partition::kRoot
                                                      : glue::Partition::kMember;
    all.emplace_back(e.name(), glue::GroupSettings{e.runnable(), e.class_params(), part});
  });
  return glue_->apply_groups(all);
}

// ---- views and events ----------------------------------------------------------

v1::Scheduler Engine::to_proto(const Entity& e) const {
  v1::Scheduler s;
  auto* sp = s.mutable_spec();
  sp->set_name(e.name());
  sp->set_pool(e.spec().pool.to_string());
  sp->set_vcpus(e.vcpu_count());
  sp->set_lwktpri(e.spec().lwktpri);
  sp->set_sched_class(e.spec().class_override ? to_proto_class(*e.spec().class_override)
                                              : v1::SCHED_CLASS_UNSPECIFIED);
  sp->set_locked(e.spec().locked);
  sp->set_exclusive(e.spec().exclusive);
  sp->set_isolated(e.spec().isolated);
  s.set_parent(e.parent() ? e.parent()->name() : "");
  for (auto& [leaf, child] : e.children()) s.add_children(child->name());
  const ClassParams cp = e.class_params();
  s.set_effective_class(to_proto_class(cp.cls));
  s.set_rt_priority(cp.rt_priority);
  s.set_cpu_weight(cp.cpu_weight);
  s.set_cpus(e.phys().to_string());
  s.set_effective_cpus(e.effective().to_string());
  s.set_starved(e.starved());
  if (!e.is_root()) s.set_partition(glue_->partition_state(e.name()));
  for (int i = 0; i < e.vcpu_count(); ++i) {
    auto* v = s.add_vcpu();
    v->set_index(i);
    v->set_cpus(e.vcpu_effective()[i].to_string());
    v->set_members(e.members_on_vcpu(i));
  }
  for (auto& [key, m] : e.members()) {
    auto* pm = s.add_members();
    pm->set_pid(key.pid);
    pm->set_tid(key.tid);
    pm->set_vcpu(m.vcpu);
    pm->set_start_time(m.start_time);
    pm->set_uid(m.uid);
    pm->set_cpus(e.cpus_for(m).to_string());
  }
  s.set_owner_uid(e.spec().owner_uid);
  s.set_owner_gid(e.spec().owner_gid);
  s.set_depth(e.depth());
  return s;
}

int Engine::subscribe(Subscriber s) {
  const int id = next_subscriber_++;
  subscribers_.emplace(id, std::move(s));
  return id;
}

void Engine::unsubscribe(int id) { subscribers_.erase(id); }

void Engine::publish(v1::Event::Kind kind, const std::string& scheduler, int pid, int tid,
                     const std::string& detail) {
  if (subscribers_.empty()) return;
  v1::Event ev;
  ev.set_kind(kind);
  ev.set_scheduler(scheduler);
  ev.set_pid(pid);
  ev.set_tid(tid);
  ev.set_time_us(now_us());
  ev.set_detail(detail);
  for (auto& [id, fn] : subscribers_) fn(ev);
}

// ---- state file ------------------------------------------------------------------

// save_state(), write_state(), snapshot() and commit() are in durable.cc.

Status Engine::load_state(const std::string& text) {
  v1::StateFile f;
  auto st = google::protobuf::util::JsonStringToMessage(text, &f);
  if (!st.ok()) return invalid(std::string(st.message()));
  if (f.version() != kStateVersion) {
    return invalid("version " + std::to_string(f.version()) + " is not the " +
                   std::to_string(kStateVersion) + " this uschedd reads");
  }
  int created = 0;
  for (const auto& s : f.schedulers()) {
    EntitySpec es;
    es.name = s.name();
    auto pool = parse_pool(s.pool());
    if (!pool) return invalid("scheduler '" + s.name() + "': " + pool.status().message());
    es.pool = *pool;
    es.vcpus = s.vcpus();
    es.lwktpri = s.lwktpri();
    if (!s.class_override().empty()) {
      auto c = parse_class(s.class_override());
      if (!c) return invalid("scheduler '" + s.name() + "': " + c.status().message());
      es.class_override = *c;
    }
    es.locked = s.locked();
    es.exclusive = s.exclusive();
    es.isolated = s.isolated();
    es.owner_uid = s.owner_uid();
    es.owner_gid = s.owner_gid();
    es.allow_realtime = s.allow_realtime();
    if (s.from_config()) from_config_.insert(s.name());
    auto r = tree_->create(es);
    if (!r) {
      // The machine changed under the state (fewer CPUs): say so loudly
      // and go on with the rest rather than refuse to run at all.
      spdlog::error("state: cannot re-create '{}': {}", s.name(), r.status().message());
      continue;
    }
    ++created;
  }
  (void)adopt_members(f.members());  // files from before members.json
  if (Status s = load_members(f.boot_id()); !s) return s;
  if (gangs_) gangs_->load(f);  // gangs and their members that were adopted (gang.cc)
  spdlog::info("state: re-created {} schedulers", created);
  return Status::ok();
}

std::pair<int, int> Engine::adopt_members(
    const google::protobuf::RepeatedPtrField<v1::StateMember>& ms) {
  int adopted = 0, dropped = 0;
  for (const auto& sm : ms) {
    const MemberKey key{sm.pid(), sm.tid()};
    auto info = proc_.task(key.pid, key.tid);
    if (!info || info->start_time != sm.start_time()) {
      ++dropped;
      spdlog::info("state: {} of {} is gone", member_label(key), sm.scheduler());
      continue;
    }
    Member m;
    m.key = key;
    m.start_time = sm.start_time();
    m.uid = sm.uid();
    m.requested_vcpu = sm.requested_vcpu();
    if (auto b = tree_->bind(sm.scheduler(), m); !b) {
      ++dropped;
      spdlog::warn("state: {} cannot rejoin {}: {}", member_label(key), sm.scheduler(),
                   b.status().message());
      continue;
    }
    Tracked& t = tracked_[key];
    t.generation = next_generation_++;
    if (auto o = glue::TaskOrigin::parse(sm.origin()); o) t.origin = *o;
    watch_exit(key, t);
    ++adopted;
  }
  if (adopted || dropped) {
    spdlog::info("state: adopted {} members, dropped {} that are gone", adopted, dropped);
  }
  return {adopted, dropped};
}

Status Engine::load_members(const std::string& state_boot_id) {
  const std::string path = opts_.state_dir + "/members.json";
  std::ifstream in(path);
  if (!in) return Status::ok();
  const std::string now = boot_id();
  std::stringstream ss;
  ss << in.rdbuf();
  v1::MembersFile mf;
  const auto st = google::protobuf::util::JsonStringToMessage(ss.str(), &mf);
  if (!st.ok() || mf.version() != kStateVersion) {
    // Not fsynced, so a power loss may tear it; then the tree was last
    // written in an earlier boot and every task it named is gone anyway.
    if (state_boot_id != now) {
      spdlog::info("state: {} is unreadable and from an earlier boot; ignored", path);
      return Status::ok();
    }
    corrupt_file_ = path;
    return invalid(!st.ok() ? std::string(st.message())
                            : "version " + std::to_string(mf.version()) + " is not " +
                                  std::to_string(kStateVersion));
  }
  if (mf.boot_id() != now) {
    spdlog::info("state: the members in {} are from an earlier boot; none is adopted", path);
    return Status::ok();
  }
  // Replay members.log over the file: each line sets or removes a member.
  std::map<MemberKey, v1::StateMember> members;
  for (const auto& sm : mf.members()) members[MemberKey{sm.pid(), sm.tid()}] = sm;
  const std::string log_path = opts_.state_dir + "/members.log";
  std::ifstream log(log_path);
  std::string line;
  int lineno = 0;
  while (std::getline(log, line)) {
    ++lineno;
    if (log.eof()) break;  // no newline: cut short by a crash, never answered
    v1::MemberOp op;
    if (!google::protobuf::util::JsonStringToMessage(line, &op).ok() || op.op_case() == v1::MemberOp::OP_NOT_SET) {
      corrupt_file_ = log_path;
      return invalid(log_path + " line " + std::to_string(lineno) + " is not a member record");
    }
    if (op.has_bind()) {
      members[MemberKey{op.bind().pid(), op.bind().tid()}] = op.bind();
    } else {
      members.erase(MemberKey{op.unbind().pid(), op.unbind().tid()});
    }
  }
  google::protobuf::RepeatedPtrField<v1::StateMember> all;
  for (auto& [key, sm] : members) *all.Add() = std::move(sm);
  (void)adopt_members(all);
  return Status::ok();
}

}  // namespace usched::daemon
