#include "usched/glue/proc.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "fake_fs.h"

namespace usched::glue {
namespace {

using testing::TempDir;

// A pid that certainly existed and has been reaped.
int reaped_pid() {
  pid_t p = fork();
  if (p == 0) _exit(0);
  waitpid(p, nullptr, 0);
  return p;
}

TEST(ProcFs, ReadsOwnStartTimeUidAndState) {
  ProcFs proc;
  auto t = proc.task(getpid());
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  EXPECT_EQ(t->pid, getpid());
  EXPECT_EQ(t->tid, getpid());
  EXPECT_GT(t->start_time, 0u);
  EXPECT_EQ(t->uid, getuid());
  EXPECT_EQ(t->euid, geteuid());
  EXPECT_FALSE(t->kernel_thread);
  EXPECT_EQ(t->state, 'R');
  // Stable across reads: the identity check against pid reuse relies on it.
  EXPECT_EQ(proc.task(getpid())->start_time, t->start_time);
}

TEST(ProcFs, SeesAThreadAndItsTgid) {
  std::atomic<int> tid{0};
  std::atomic<bool> stop{false};
  std::thread th([&] {
    tid = gettid();
    while (!stop) usleep(1000);
  });
  while (tid == 0) usleep(100);
  ProcFs proc;
  auto threads = proc.threads(getpid());
  ASSERT_TRUE(threads.is_ok());
  EXPECT_NE(std::find(threads->begin(), threads->end(), tid.load()), threads->end());
  EXPECT_NE(std::find(threads->begin(), threads->end(), getpid()), threads->end());
  auto t = proc.task(getpid(), tid);
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  EXPECT_EQ(t->pid, getpid());
  EXPECT_EQ(t->tid, tid.load());
  auto cpus = proc.cpus_allowed(getpid(), tid);
  ASSERT_TRUE(cpus.is_ok());
  EXPECT_FALSE(cpus->empty());
  auto fd = PidFd::open(getpid(), tid);
  ASSERT_TRUE(fd.is_ok()) << fd.status().to_string();
  EXPECT_TRUE(fd->valid());
  stop = true;
  th.join();
}

// A rebind reads the status alone (the member is held by a pidfd): it
// must say what the two reads say, but for what only stat has.
TEST(ProcFs, StatusAloneAgreesWithTheFullReadOnWhatItHas) {
  pid_t child = fork();
  if (child == 0) {
    pause();
    _exit(0);
  }
  ProcFs proc;
  auto full = proc.task(child);
  auto one = proc.task_status(child);
  ASSERT_TRUE(full.is_ok()) << full.status().to_string();
  ASSERT_TRUE(one.is_ok()) << one.status().to_string();
  EXPECT_EQ(one->pid, child);
  EXPECT_EQ(one->tid, child);
  EXPECT_EQ(one->ppid, getpid());
  EXPECT_EQ(one->ppid, full->ppid);
  EXPECT_EQ(one->uid, full->uid);
  EXPECT_EQ(one->euid, full->euid);
  EXPECT_EQ(one->comm, full->comm);
  EXPECT_EQ(one->start_time, 0u) << "status has no start time: the caller's record is the identity";
  auto fd = PidFd::open(child);
  ASSERT_TRUE(fd.is_ok()) << fd.status().to_string();
  EXPECT_TRUE(pidfd_alive(fd->get()));
  ::kill(child, SIGKILL);
  // A zombie is still the task the pid names: alive until reaped.
  for (int i = 0; i < 1000 && proc.task(child).is_ok() && proc.task(child)->state != 'Z'; ++i) usleep(1000);
  EXPECT_TRUE(pidfd_alive(fd->get()));
  waitpid(child, nullptr, 0);
  EXPECT_FALSE(pidfd_alive(fd->get())) << "reaped: the pid may now name another process";
  EXPECT_EQ(proc.task_status(child).status().code(), Code::kNotFound);
}

TEST(ProcFs, StatusAloneOfAThreadNamesItsProcess) {
  TempDir t;
  testing::put(t / "4242/task/4250/status",
               "Name:\tworker\nState:\tS (sleeping)\nTgid:\t4242\nPid:\t4250\nPPid:\t1\nUid:\t1000\t1001\t1000\t1000\n");
  auto i = ProcFs(t.path()).task_status(4242, 4250);
  ASSERT_TRUE(i.is_ok()) << i.status().to_string();
  EXPECT_EQ(i->pid, 4242);
  EXPECT_EQ(i->tid, 4250);
  EXPECT_EQ(i->ppid, 1);
  EXPECT_EQ(i->uid, 1000u);
  EXPECT_EQ(i->euid, 1001u);
  EXPECT_EQ(i->state, 'S');
  testing::put(t / "5/status", "Name:\tx\nTgid:\t5\nUid:\t0\t0\t0\t0\n");
  auto bad = ProcFs(t.path()).task_status(5);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("malformed"), std::string::npos) << bad.status().message();
}

TEST(ProcFs, KernelThreaddIsAKernelThread) {
  ProcFs proc;
  auto t = proc.task(2);
  if (!t.is_ok()) GTEST_SKIP() << "no pid 2 visible (pid namespace)";
  EXPECT_TRUE(t->kernel_thread);
}

TEST(ProcFs, MissingTaskIsNotFoundNamingThePid) {
  ProcFs proc;
  int pid = reaped_pid();
  auto t = proc.task(pid);
  ASSERT_FALSE(t.is_ok());
  EXPECT_EQ(t.status().code(), Code::kNotFound);
  EXPECT_NE(t.status().message().find("pid " + std::to_string(pid)), std::string::npos);
  EXPECT_EQ(proc.threads(pid).status().code(), Code::kNotFound);
  EXPECT_EQ(PidFd::open(pid).status().code(), Code::kNotFound);
}

TEST(ProcFs, CommWithSpacesAndParenthesesDoesNotShiftFields) {
  TempDir t;
  // Fields after comm: state ppid pgrp session tty tpgid flags(9) minflt
  // cminflt majflt cmajflt utime stime cutime cstime priority nice
  // num_threads itrealvalue starttime(22) vsize ...
  testing::put(t / "4242/stat",
               "4242 (a) b (c)) d) S 1 4242 4242 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 987654 1000 0\n");
  testing::put(t / "4242/status", "Name:\ta) b\nTgid:\t4242\nUid:\t1000\t1001\t1000\t1000\n");
  testing::put(t / "4242/task/4242/status", "Cpus_allowed_list:\t0-3,6\n");
  testing::put(t / "7/stat", "7 (kworker/0:1) I 2 0 0 0 -1 69238880 0 0 0 0 0 0 0 0 20 0 1 0 12 0 0\n");
  testing::put(t / "7/status", "Tgid:\t7\nUid:\t0\t0\t0\t0\n");
  ProcFs proc(t.path());
  auto i = proc.task(4242);
  ASSERT_TRUE(i.is_ok()) << i.status().to_string();
  EXPECT_EQ(i->comm, "a) b (c)) d");
  EXPECT_EQ(i->state, 'S');
  EXPECT_EQ(i->start_time, 987654u);
  EXPECT_EQ(i->uid, 1000u);
  EXPECT_EQ(i->euid, 1001u);
  EXPECT_FALSE(i->kernel_thread);
  EXPECT_EQ(proc.cpus_allowed(4242).value(), "0-3,6");
  auto k = proc.task(7);
  ASSERT_TRUE(k.is_ok());
  EXPECT_TRUE(k->kernel_thread);
  EXPECT_EQ(k->state, 'I');
}

TEST(ProcFs, MalformedStatIsAnErrorNotAGuess) {
  TempDir t;
  testing::put(t / "5/stat", "5 (x) S 1 2\n");
  testing::put(t / "5/status", "Uid:\t0\t0\t0\t0\n");
  auto r = ProcFs(t.path()).task(5);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("malformed"), std::string::npos);
}

TEST(PidFd, OwnsItsFdAndMoveAssignmentClosesTheOldOne) {
  auto a = PidFd::open(getpid());
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  auto b = PidFd::open(getpid());
  ASSERT_TRUE(b.is_ok());
  int old = a->get();
  PidFd x = std::move(a.value());
  EXPECT_FALSE(a->valid());
  x = std::move(b.value());
  EXPECT_EQ(fcntl(old, F_GETFD), -1);  // closed, not leaked
  EXPECT_TRUE(x.valid());
}

}  // namespace
}  // namespace usched::glue
