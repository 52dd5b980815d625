//! The state written before an RPC answers. A change is made in the
//! tree, written, and only then applied to the kernel; when the write fails
//! the tree is rebuilt from the snapshot taken before the change, so the RPC
//! fails with the tree, the files and the kernel all as they were.
//!
//! Two files: state.json holds the tree (schedulers, gangs, owners) and is
//! written with fsync (file and directory), so it survives a power loss;
//! members.json holds the bound tasks and is replaced by rename without
//! fsync: tasks die with the machine, so that file only has to survive
//! uschedd's own crash, which the page cache guarantees. A Bind therefore
//! waits for no disk flush (about 4-8 ms on this kind of machine).
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <fstream>
#include <optional>
#include <string_view>

#include <google/protobuf/util/json_util.h>
#include <spdlog/spdlog.h>

#include "engine.h"
#include "gang.h"

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
    s->set_isolated(e.spec().isolated);
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
  if (gangs_) gangs_->save(f);
  return f;
}

namespace {

// Replaces `path` atomically with `data`: a crash leaves either the old file
// or the new one, never a torn one (rename(2) is atomic). With `sync`, the
// fsyncs order the data before the rename and the rename before our answer,
// so the new file also survives a power loss.
Status replace_file(const std::string& dir, const std::string& path, const std::string& data,
                    bool sync) {
  const std::string tmp = path + ".tmp";
  Status st = Status::ok();
  {
    Fd f{::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)};
    if (f.fd < 0) return io_error("open", tmp, errno);
    size_t done = 0;
    while (done < data.size()) {
      const ssize_t n = ::write(f.fd, data.data() + done, data.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        st = io_error("write", tmp, n < 0 ? errno : ENOSPC);
        break;
      }
      done += static_cast<size_t>(n);
    }
    if (st && sync && ::fsync(f.fd) != 0) st = io_error("fsync", tmp, errno);
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
  if (!sync) return Status::ok();
  Fd d{::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (d.fd < 0) return io_error("open", dir, errno);
  if (::fsync(d.fd) != 0) return io_error("fsync", dir, errno);
  return Status::ok();
}

Result<std::string> to_json(const google::protobuf::Message& m) {
  std::string json;
  google::protobuf::util::JsonPrintOptions jo;
  jo.add_whitespace = true;
  jo.always_print_primitive_fields = true;
  if (!google::protobuf::util::MessageToJsonString(m, &json, jo).ok()) {
    return internal("cannot encode the state");
  }
  return json;
}

}  // namespace

std::string Engine::boot_id() const {
  if (boot_id_.empty()) {
    std::ifstream in(proc_.root() + "/sys/kernel/random/boot_id");
    in >> boot_id_;
  }
  return boot_id_;
}

namespace {

void fill_member(v1::StateMember* sm, const std::string& entity, const Member& m,
                 const glue::TaskOrigin& origin) {
  sm->set_scheduler(entity);
  sm->set_pid(m.key.pid);
  sm->set_tid(m.key.tid);
  sm->set_start_time(m.start_time);
  sm->set_uid(m.uid);
  sm->set_requested_vcpu(m.requested_vcpu);
  sm->set_origin(origin.to_string());
}

// Text JSON can hold as it is: printable ASCII that no JSON printer escapes.
bool plain(std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' || c == '\'') {
      return false;
    }
  }
  return true;
}

// The line protobuf's JSON printer writes for a MemberOp, default options
// (lowerCamelCase names, fields at their default left out, 64-bit integers
// quoted), written here without reflection: every Bind writes one before
// it answers. Only for names and origins that need no escaping; nullopt
// otherwise, and the caller asks protobuf.
std::optional<std::string> member_line(const std::string* entity, const Member* m, MemberKey key,
                                       const std::string& origin) {
  if (entity && !(plain(*entity) && plain(origin))) return std::nullopt;
  std::string out;
  out.reserve(160 + origin.size());
  out += entity ? "{\"bind\":{" : "{\"unbind\":{";
  bool first = true;
  auto field = [&](const char* name) {
    if (!first) out += ',';
    first = false;
    out += '"';
    out += name;
    out += "\":";
  };
  auto text = [&](const char* name, const std::string& v) {
    if (v.empty()) return;
    field(name);
    out += '"';
    out += v;
    out += '"';
  };
  auto number = [&](const char* name, long long v) {
    if (v == 0) return;
    field(name);
    out += std::to_string(v);
  };
  if (entity) text("scheduler", *entity);
  number("pid", key.pid);
  number("tid", key.tid);
  if (entity) {
    if (m->start_time != 0) {
      field("startTime");
      out += '"' + std::to_string(m->start_time) + '"';
    }
    number("uid", m->uid);
    number("requestedVcpu", m->requested_vcpu);
    text("origin", origin);
  }
  out += "}}\n";
  return out;
}

}  // namespace

Status Engine::write_members() {
  v1::MembersFile mf;
  mf.set_version(kStateVersion);
  mf.set_boot_id(boot_id());
  for (auto& [key, t] : tracked_) {
    const Entity* e = tree_->entity_of(key);
    t.recorded = e ? e->name() : "";
    if (e) fill_member(mf.add_members(), e->name(), e->members().at(key), t.origin);
  }
  auto json = to_json(mf);
  if (!json) return json.status();
  if (Status s = replace_file(opts_.state_dir, opts_.state_dir + "/members.json", *json, false); !s) {
    for (auto& [key, t] : tracked_) t.recorded = "?";  // unknown: record again next time
    return s;
  }
  members_written_ = json->size();
  // members.json now holds everything the log said: start an empty log.
  // (Should we die before the truncate, replaying the old log over the new
  // file changes nothing: every line sets one member to what it became.)
  const std::string log = opts_.state_dir + "/members.log";
  if (::truncate(log.c_str(), 0) != 0 && errno != ENOENT) return io_error("truncate", log, errno);
  members_log_size_ = 0;
  return Status::ok();
}

Status Engine::log_member(MemberKey key) {
  // Past a few times the size of members.json (and 64 KiB), rewriting the
  // file is cheaper than replaying the log at the next start.
  if (members_written_ == 0 ||
      members_log_size_ > std::max<off_t>(64 * 1024, 4 * static_cast<off_t>(members_written_))) {
    return write_members();
  }
  const Entity* e = tree_->entity_of(key);
  auto t = tracked_.find(key);
  const bool bound = e && t != tracked_.end();
  const std::string origin = bound ? t->second.origin.to_string() : "";
  std::optional<std::string> fast =
      bound ? member_line(&e->name(), &e->members().at(key), key, origin) : member_line(nullptr, nullptr, key, "");
  std::string line;
  if (fast) {
    line = std::move(*fast);
  } else {
    v1::MemberOp op;
    if (bound) {
      fill_member(op.mutable_bind(), e->name(), e->members().at(key), t->second.origin);
    } else {
      op.mutable_unbind()->set_pid(key.pid);
      op.mutable_unbind()->set_tid(key.tid);
    }
    if (!google::protobuf::util::MessageToJsonString(op, &line).ok()) {
      return internal("cannot encode a member");
    }
    line += '\n';
  }
  // Opened per line, not kept open: an open file would keep the state
  // directory's file system from being remounted read-only.
  const std::string log = opts_.state_dir + "/members.log";
  Fd f{::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)};
  if (f.fd < 0) return io_error("open", log, errno);
  const ssize_t n = ::write(f.fd, line.data(), line.size());
  if (n != static_cast<ssize_t>(line.size())) {
    const int err = n < 0 ? errno : ENOSPC;
    // Never leave half a line for the next one to follow: cut it off.
    if (n > 0 && ::ftruncate(f.fd, members_log_size_) != 0) {
      spdlog::error("state: cannot cut a partial line off {}: {}", log, std::strerror(errno));
    }
    return io_error("write", log, err);
  }
  members_log_size_ += n;
  if (t != tracked_.end()) t->second.recorded = e ? e->name() : "";
  return Status::ok();
}

Status Engine::log_moved_members() {
  for (auto& [key, t] : tracked_) {
    const Entity* e = tree_->entity_of(key);
    if ((e ? e->name() : "") == t.recorded) continue;
    if (Status s = log_member(key); !s) return s;
  }
  return Status::ok();
}

Status Engine::write_state() {
  // Members first (only those the change moved): should we crash between
  // the two, the members files name only entities the old tree (still in
  // state.json) also has, or their parents after a destroy.
  if (Status s = log_moved_members(); !s) return s;
  v1::StateFile f = snapshot();
  f.clear_members();
  f.set_boot_id(boot_id());
  auto json = to_json(f);
  if (!json) return json.status();
  return replace_file(opts_.state_dir, opts_.state_dir + "/state.json", *json, true);
}

void Engine::save_state() {
  if (Status s = write_state(); !s) spdlog::error("state: {}", s.message());
}

Status Engine::commit(const v1::StateFile& before) {
  Status s = write_state();
  if (s) return s;
  spdlog::error("state: {}", s.message());
  restore_tree(before);
  (void)log_moved_members();  // members may have been logged before the tree failed
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
    es.isolated = s.isolated();
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
