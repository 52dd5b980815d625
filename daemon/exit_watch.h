//! Exits of members, seen through their pidfds, in batches.
//!
//! Every pidfd sits in one epoll set of its own, which the io_context
//! watches as a single descriptor. After it has reported exits, that set is
//! taken out of the io_context for a pause: exits in the meantime wait in
//! it, wake nobody, and are reported together when the pause ends. A
//! member that exits alone is seen at once; a stream of short-lived members
//! (rfork + exec of a command, over and over) wakes uschedd once per pause
//! rather than once per exit, each wake competing for a CPU with the parent
//! that waits for that exit (docs/benchmarks.md, issue 12, seventh and
//! eighth stops).
#pragma once

#include <chrono>
#include <functional>
#include <memory>

#include "asio.h"
#include "usched/glue/proc.h"
#include "usched/result.h"

namespace usched::daemon {

class ExitWatch {
 public:
  // on_exit gets the pid and tid given to watch(); it runs on the io_context.
  ExitWatch(asio::io_context& io, std::chrono::milliseconds pause, std::function<void(int pid, int tid)> on_exit);
  ~ExitWatch();
  ExitWatch(const ExitWatch&) = delete;
  ExitWatch& operator=(const ExitWatch&) = delete;

  // One watched pidfd; closing it (destroying this) ends the watch.
  class Entry {
   public:
    ~Entry();
    Entry(const Entry&) = delete;
    Entry& operator=(const Entry&) = delete;
    int fd() const { return fd_.get(); }

   private:
    friend class ExitWatch;
    Entry(ExitWatch& w, glue::PidFd fd) : w_(w), fd_(std::move(fd)) {}
    ExitWatch& w_;
    glue::PidFd fd_;
  };

  // Watches fd, a pidfd of pid (tid: of that thread), for its exit.
  Result<std::unique_ptr<Entry>> watch(glue::PidFd fd, int pid, int tid);
  // Reports no more exits.
  void stop();

 private:
  void wait();
  void pause();
  // Reports what the set holds now; false when it held nothing.
  bool report();

  std::function<void(int, int)> on_exit_;
  std::chrono::milliseconds pause_;
  int epfd_ = -1;  // the set (owned by set_), -1 if epoll_create1 failed
  asio::posix::stream_descriptor set_;
  asio::steady_timer pause_timer_;
  bool stopped_ = false;
  bool polling_ = false;  // the set could not be watched again: looked at after each pause
};

}  // namespace usched::daemon
