#include "exit_watch.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

#include <spdlog/spdlog.h>

namespace usched::daemon {

namespace {
uint64_t pack(int pid, int tid) { return uint64_t{static_cast<uint32_t>(pid)} << 32 | static_cast<uint32_t>(tid); }
}  // namespace

ExitWatch::ExitWatch(asio::io_context& io, std::chrono::milliseconds pause, std::function<void(int, int)> on_exit)
    : on_exit_(std::move(on_exit)), pause_(pause), set_(io), pause_timer_(io) {
  const int fd = ::epoll_create1(EPOLL_CLOEXEC);
  if (fd < 0) return;  // watch() says so
  set_.assign(fd);
  epfd_ = fd;
  wait();
}

ExitWatch::~ExitWatch() {
  stop();
  // Released for a pause: the set is ours to close, not set_'s.
  if (epfd_ >= 0 && !set_.is_open()) ::close(epfd_);
}

Result<std::unique_ptr<ExitWatch::Entry>> ExitWatch::watch(glue::PidFd fd, int pid, int tid) {
  if (epfd_ < 0 || stopped_) return internal("no epoll set for pidfds");
  // Level-triggered: an exited task's pidfd stays readable, so an exit is
  // reported until its member is removed, however long the pause.
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = pack(pid, tid);
  if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd.get(), &ev) != 0) {
    return internal(std::string("epoll_ctl on a pidfd: ") + std::strerror(errno));
  }
  return std::unique_ptr<Entry>(new Entry(*this, std::move(fd)));
}

ExitWatch::Entry::~Entry() {
  // Explicitly: a copy of the pidfd elsewhere (a forked child) would keep
  // it in the set after our close.
  if (w_.epfd_ >= 0) (void)::epoll_ctl(w_.epfd_, EPOLL_CTL_DEL, fd_.get(), nullptr);
}

void ExitWatch::stop() {
  // The set stays open (set_ closes it when destroyed): entries still
  // leave it as they go.
  stopped_ = true;
  pause_timer_.cancel();
  boost::system::error_code ec;
  set_.cancel(ec);
}

bool ExitWatch::report() {
  epoll_event ev[64];
  const int n = ::epoll_wait(epfd_, ev, 64, 0);
  for (int i = 0; i < n && !stopped_; ++i) {
    on_exit_(static_cast<int>(ev[i].data.u64 >> 32), static_cast<int>(ev[i].data.u64 & 0xffffffffu));
  }
  return n > 0;
}

void ExitWatch::wait() {
  // Asio watches the set edge-triggered: an exit that made it readable
  // while no wait was pending (during the pause, or while exits were being
  // reported) gives no edge of its own later. So the set is looked at
  // first, and waited on only when empty; the io_context's one thread
  // cannot miss an edge between the two (it polls only after this returns).
  if (report()) return pause();
  set_.async_wait(asio::posix::stream_descriptor::wait_read, [this](const boost::system::error_code& ec) {
    if (ec || stopped_) return;
    if (report()) return pause();
    wait();
  });
}

void ExitWatch::pause() {
  if (stopped_) return;
  // Out of the io_context's epoll set while resting: were it still in,
  // every exit would wake the io_context (only to find no wait pending),
  // the very wake the pause is there to spare. The set stays open and
  // keeps what exits meanwhile.
  (void)set_.release();
  pause_timer_.expires_after(pause_);
  pause_timer_.async_wait([this](const boost::system::error_code& e) {
    if (e || stopped_) return;
    boost::system::error_code ec;
    set_.assign(epfd_, ec);
    if (ec) {
      // Out of the io_context no exit wakes us: look at the set after
      // every pause instead, and try again, until it can be watched.
      if (!polling_) {
        spdlog::error("exit watch: cannot watch the pidfd set again: {}; looking at it every {} ms meanwhile",
                      ec.message(), pause_.count());
      }
      polling_ = true;
      (void)report();
      return pause();
    }
    if (polling_) spdlog::info("exit watch: the pidfd set is watched again");
    polling_ = false;
    wait();
  });
}

}  // namespace usched::daemon
