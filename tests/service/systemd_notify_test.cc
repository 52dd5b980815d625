// Tier 2: uschedd as a systemd service sees it, without systemd: the
// sd_notify(3) datagrams on $NOTIFY_SOCKET (READY=1 once the socket
// answers, STOPPING=1 on SIGTERM) and the syslog priority prefixes on
// stderr when $JOURNAL_STREAM names it. The guest with systemd as PID 1
// (ctest vm.systemd) checks the same through systemctl and journalctl.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "support/harness.h"

namespace usched::test {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

std::vector<std::string> fake() { return {"--glue", "fake", "--fake-cpus", "0-3", "--no-config"}; }

// A datagram socket standing in for systemd's notify socket.
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& path) : path_(path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
    bound_ = fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~NotifySocket() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool bound() const { return bound_; }
  // The next datagram, or "" after the limit.
  std::string next(std::chrono::milliseconds limit = 10s) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(scaled(limit).count())) != 1) return "";
    char buf[4096];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, n) : "";
  }

 private:
  std::string path_;
  int fd_ = -1;
  bool bound_ = false;
};

// Sets an environment variable for the daemons started in its scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) { ::setenv(name, value.c_str(), 1); }
  ~ScopedEnv() { ::unsetenv(name_); }

 private:
  const char* name_;
};

TEST(SystemdNotify, ReadyOnceServingAndStoppingOnSigterm) {
  TempDir dir;
  NotifySocket notify(dir / "notify");
  ASSERT_TRUE(notify.bound());
  Daemon d(fake());
  {
    ScopedEnv env("NOTIFY_SOCKET", dir / "notify");
    ASSERT_TRUE(d.start()) << d.log();
  }
  const std::string ready = notify.next();
  EXPECT_THAT(ready, HasSubstr("READY=1"));
  EXPECT_THAT(ready, HasSubstr("STATUS=serving on " + d.socket()));
  // Sent after the socket answered: the daemon logged "serving on" first.
  EXPECT_THAT(d.log(), HasSubstr("serving on " + d.socket()));
  EXPECT_EQ(d.stop(SIGTERM), 0) << d.log();
  EXPECT_THAT(notify.next(), HasSubstr("STOPPING=1"));
}

TEST(SystemdNotify, NoNotifySocketNoDatagramAndThePlainLog) {
  TempDir dir;
  NotifySocket notify(dir / "notify");
  ASSERT_TRUE(notify.bound());
  Daemon d(fake());
  ASSERT_TRUE(d.start()) << d.log();
  EXPECT_EQ(d.stop(SIGTERM), 0) << d.log();
  EXPECT_EQ(notify.next(200ms), "");
  EXPECT_THAT(d.log(), Not(HasSubstr("<6>")));
  EXPECT_THAT(d.log(), HasSubstr("[info] uschedd"));
}

// The daemon's stderr is its log file: JOURNAL_STREAM names that file as
// systemd names the journal's stream (device:inode).
std::string stream_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "";
  return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
}

TEST(SystemdNotify, JournalStreamGetsPriorityPrefixes) {
  Daemon d(fake());
  const std::string log = d.dir() / "uschedd.log";
  { std::ofstream(log).flush(); }
  const std::string stream = stream_of(log);
  ASSERT_FALSE(stream.empty());
  {
    ScopedEnv env("JOURNAL_STREAM", stream);
    ASSERT_TRUE(d.start()) << d.log();
  }
  // SIGHUP without a config file is a warning.
  ::kill(d.pid(), SIGHUP);
  ASSERT_TRUE(eventually([&] { return d.log().find("SIGHUP") != std::string::npos; })) << d.log();
  EXPECT_EQ(d.stop(SIGTERM), 0) << d.log();
  std::istringstream lines(d.log());
  int info = 0, warning = 0;
  for (std::string line; std::getline(lines, line);) {
    EXPECT_THAT(line, StartsWith("<")) << "a line without its priority: " << line;
    info += line.rfind("<6>info: ", 0) == 0;
    if (line.find("SIGHUP") != std::string::npos) {
      EXPECT_THAT(line, StartsWith("<4>warning: "));
      ++warning;
    }
  }
  EXPECT_GT(info, 0) << d.log();
  EXPECT_EQ(warning, 1) << d.log();
}

TEST(SystemdNotify, JournalStreamOfAnotherFileLeavesThePlainLog) {
  Daemon d(fake());
  {
    ScopedEnv env("JOURNAL_STREAM", "1:1");
    ASSERT_TRUE(d.start()) << d.log();
  }
  EXPECT_EQ(d.stop(SIGTERM), 0) << d.log();
  EXPECT_THAT(d.log(), Not(HasSubstr("<6>")));
  EXPECT_THAT(d.log(), HasSubstr("[info] uschedd"));
}

}  // namespace
}  // namespace usched::test
