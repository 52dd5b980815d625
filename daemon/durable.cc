//! The state file written before an RPC answers. A change is made in the
//! tree, written (temp file, fsync, rename, fsync of the directory), and
//! only then applied to the kernel; when the write fails the tree is rebuilt
//! from the snapshot taken before the change, so the RPC fails with the
//! tree, the file and the kernel all as they were.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <google/protobuf/util/json_util.h>
#include <spdlog/spdlog.h>

#include "engine.h"

namespace usched::daemon {
namespace {

constexpr int kStateVersion = 1;

// Closes the fd on every path.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

Status io_error(const std::string& verb, const std::string& path, int err) {
  return internal("cannot save the state: " + verb + " " + path + ": " + std::strerror(err) +
                  "; nothing was changed");
}

}  // namespace

v1::StateFile Engine::snapshot() const {
  v1::StateFile f;
  f.set_version(kStateVersion);
  tree_->for_each([&](const Entity& e) {
    if (e.is_root()) return;
    auto* s = f.add_schedulers();
    s->set_name(e.name());
    s->set_pool(e.spec().pool.to_string());
    s->set_vcpus(e.spec().vcpus);
    s->set_lwktpri(e.spec().lwktpri);
    s->set_class_override(e.spec().class_override ? class_name(*e.spec().class_override) : "");
    s->set_locked(e.spec().locked);
    s->set_exclusive(e.spec().exclusive);
    s->set_owner_uid(e.spec().owner_uid);
    s->set_owner_gid(e.spec().owner_gid);
    s->set_allow_realtime(e.spec().allow_realtime);
    s->set_from_config(from_config_.count(e.name()) > 0);
    for (auto& [key, m] : e.members()) {
      auto* sm = f.add_members();
      sm->set_scheduler(e.name());
      sm->set_pid(key.pid);
      sm->set_tid(key.tid);
      sm->set_start_time(m.start_time);
      sm->set_uid(m.uid);
      sm->set_requested_vcpu(m.requested_vcpu);
      if (auto it = tracked_.find(key); it != tracked_.end()) {
        sm->set_origin(it->second.origin.to_string());
      }
    }
  });
  return f;
}

Status Engine::write_state() {
  exit_save_pending_ = false;  // this write carries any exit not yet saved
  std::string json;
  google::protobuf::util::JsonPrintOptions jo;
  jo.add_whitespace = true;
  jo.always_print_primitive_fields = true;
  if (!google::protobuf::util::MessageToJsonString(snapshot(), &json, jo).ok()) {
    return internal("cannot encode the state");
  }
  // A crash leaves either the old file or the new one, never a torn one:
  // rename(2) is atomic, and the fsyncs order data before the rename and
  // the rename before our answer.
  const std::string path = opts_.state_dir + "/state.json";
  const std::string tmp = path + ".tmp";
  Status st = Status::ok();
  {
    Fd f{::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)};
    if (f.fd < 0) return io_error("open", tmp, errno);
    size_t done = 0;
    while (done < json.size()) {
      const ssize_t n = ::write(f.fd, json.data() + done, json.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        st = io_error("write", tmp, n < 0 ? errno : ENOSPC);
        break;
      }
      done += static_cast<size_t>(n);
    }
    if (st && ::fsync(f.fd) != 0) st = io_error("fsync", tmp, errno);
    if (st) {
      const int fd = f.fd;
      f.fd = -1;
      if (::close(fd) != 0) st = io_error("close", tmp, errno);
    }
  }
  if (st && ::rename(tmp.c_str(), path.c_str()) != 0) st = io_error("rename to", path, errno);
  if (!st) {
    ::unlink(tmp.c_str());
    return st;
  }
  Fd d{::open(opts_.state_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (d.fd < 0) return io_error("open", opts_.state_dir, errno);
  if (::fsync(d.fd) != 0) return io_error("fsync", opts_.state_dir, errno);
  return Status::ok();
}

void Engine::save_state() {
  if (Status s = write_state(); !s) spdlog::error("state: {}", s.message());
}

Status Engine::commit(const v1::StateFile& before) {
  Status s = write_state();
  if (s) return s;
  spdlog::error("state: {}", s.message());
  restore_tree(before);
  return s;
}

void Engine::restore_tree(const v1::StateFile& before) {
  auto t = std::make_unique<Tree>(tree_->root().phys(), tree_->root().effective());
  for (const auto& s : before.schedulers()) {
    EntitySpec es;
    es.name = s.name();
    auto pool = PoolSpec::parse(std::string_view(s.pool()));
    if (pool) es.pool = *pool;
    es.vcpus = s.vcpus();
    es.lwktpri = s.lwktpri();
    if (!s.class_override().empty()) {
      if (auto c = parse_class(s.class_override()); c) es.class_override = *c;
    }
    es.locked = s.locked();
    es.exclusive = s.exclusive();
    es.owner_uid = s.owner_uid();
    es.owner_gid = s.owner_gid();
    es.allow_realtime = s.allow_realtime();
    // The snapshot was a valid tree a moment ago: this cannot fail.
    if (auto r = t->create(es); !r) spdlog::error("state rollback: '{}': {}", es.name, r.status().message());
  }
  for (const auto& sm : before.members()) {
    Member m;
    m.key = MemberKey{sm.pid(), sm.tid()};
    m.start_time = sm.start_time();
    m.uid = sm.uid();
    m.requested_vcpu = sm.requested_vcpu();
    if (auto r = t->bind(sm.scheduler(), m); !r) {
      spdlog::error("state rollback: member {}: {}", sm.pid(), r.status().message());
    }
  }
  tree_ = std::move(t);
}

}  // namespace usched::daemon
