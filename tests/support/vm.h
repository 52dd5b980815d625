// QEMU guests as gang workloads, for the kernel tier and the benchmarks:
// Debian's kernel (scripts/vm/kernel.sh) and the loop-guest initramfs
// (scripts/vm/loop-guest.sh) under TCG, 2 vCPUs, vCPU threads named
// "CPU N/TCG" (-name NAME,debug-threads=on), serial console to a file.
#pragma once

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "support/harness.h"
#include "usched/glue/proc.h"

#ifndef USCHED_SOURCE_DIR
#error "support/vm.h needs USCHED_SOURCE_DIR (the scripts/vm/ it runs)"
#endif

namespace usched::test {

namespace vm_fs = std::filesystem;

constexpr auto kBootLimit = 150s;  // TCG on two busy CPUs: ~30 s alone, more when shared

inline std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  return s;
}

// Runs one of scripts/vm/*.sh and returns what it printed (a path), or ""
// with the reason in `why`.
inline std::string vm_script(const std::string& name, std::string& why) {
  auto r = run({std::string(USCHED_SOURCE_DIR) + "/scripts/vm/" + name}, {.timeout = 300s});
  if (r.exit_code != 0) {
    why = "scripts/vm/" + name + " failed: " + r.err;
    return "";
  }
  return trim(r.out);
}

struct Images {
  std::string kernel, initrd, why;
};

// Kernel and initramfs, or `why` not: not root, no v1 freezer (--threads
// needs it), one CPU, a script or QEMU missing.
inline Images images() {
  Images im;
  if (::geteuid() != 0) {
    im.why = "the QEMU gang test needs root";
    return im;
  }
  if (!vm_fs::exists("/sys/fs/cgroup/freezer/tasks")) {
    im.why = "no cgroup v1 freezer at /sys/fs/cgroup/freezer (--threads needs one)";
    return im;
  }
  if (std::thread::hardware_concurrency() < 2) {
    im.why = "two gangs of two vCPUs need two CPUs";
    return im;
  }
  const std::string root = vm_script("kernel.sh", im.why);
  if (root.empty()) return im;
  for (auto& e : vm_fs::directory_iterator(root + "/boot"))
    if (e.path().filename().string().rfind("vmlinuz-", 0) == 0) im.kernel = e.path().string();
  if (im.kernel.empty()) {
    im.why = "no boot/vmlinuz-* under " + root;
    return im;
  }
  im.initrd = vm_script("loop-guest.sh", im.why);
  if (!vm_fs::exists("/usr/bin/qemu-system-x86_64")) im.why = "no qemu-system-x86_64 (scripts/vm/kernel.sh installs it)";
  return im;
}

// no_timer_check: under TCG on a loaded host the guest kernel's check that
// the IO-APIC timer ticks can time out, and it panics ("IO-APIC + timer
// doesn't work"), as seen here with other VMs running beside.
// A QEMU guest started through argv_prefix (e.g. `usched run ... --`), so
// its pid is the QEMU process. Killed by pid when it goes.
class Guest {
 public:
  Guest(const std::string& name, const Images& im, const std::string& dir, std::vector<std::string> prefix) {
    serial_ = dir + "/" + name + ".serial";
    std::vector<std::string> argv = std::move(prefix);
    for (const std::string& a :
         {std::string("qemu-system-x86_64"), std::string("-name"), name + ",debug-threads=on", std::string("-accel"),
          std::string("tcg,thread=multi"), std::string("-cpu"), std::string("max"), std::string("-smp"),
          std::string("2"), std::string("-m"), std::string("192"), std::string("-kernel"), im.kernel,
          std::string("-initrd"), im.initrd, std::string("-append"), std::string("console=ttyS0 quiet panic=-1 no_timer_check"),
          std::string("-nodefaults"), std::string("-display"), std::string("none"), std::string("-monitor"),
          std::string("none"), std::string("-no-reboot"), std::string("-serial"), "file:" + serial_})
      argv.push_back(a);
    const std::string log = dir + "/" + name + ".qemu.log";
    pid_ = ::fork();
    if (pid_ == 0) {
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      ::execvp(args[0], args.data());
      ::_exit(127);
    }
  }
  ~Guest() { kill(); }
  Guest(const Guest&) = delete;
  Guest& operator=(const Guest&) = delete;
  void kill() { kill_and_reap(pid_); }
  pid_t pid() const { return pid_; }
  // True once QEMU has exited (a guest panic with -no-reboot); reaps it.
  bool exited() {
    if (pid_ <= 0) return true;
    if (::waitpid(pid_, nullptr, WNOHANG) != pid_) return false;
    pid_ = -1;
    return true;
  }
  // Waits until both guests printed `ticks` lines, or one exited, or
  // kBootLimit passed; "" when booted, else what happened with the end of
  // each serial console.
  static std::string boot_both(Guest& a, Guest& b, int ticks = 3);
  // Lines "loop-guest tick N" printed so far.
  int ticks() const {
    const std::string s = read_file(serial_);
    int n = 0;
    for (size_t p = s.find("loop-guest tick"); p != std::string::npos; p = s.find("loop-guest tick", p + 1)) ++n;
    return n;
  }
  std::string serial() const { return read_file(serial_); }
  // tid -> comm of every thread.
  std::map<int, std::string> threads() const {
    std::map<int, std::string> out;
    std::error_code ec;
    for (auto& e : vm_fs::directory_iterator("/proc/" + std::to_string(pid_) + "/task", ec)) {
      out[std::stoi(e.path().filename())] = trim(read_file(e.path().string() + "/comm"));
    }
    return out;
  }
  std::vector<int> vcpus() const {
    std::vector<int> out;
    for (auto& [tid, comm] : threads())
      if (comm.rfind("CPU ", 0) == 0 && comm.find("/TCG") != std::string::npos) out.push_back(tid);
    return out;
  }

 private:
  std::string serial_;
  pid_t pid_ = -1;
};

inline std::string Guest::boot_both(Guest& a, Guest& b, int ticks) {
  const bool up = eventually([&] { return a.exited() || b.exited() || (a.ticks() >= ticks && b.ticks() >= ticks); },
                             kBootLimit);
  if (up && !a.exited() && !b.exited()) return "";
  auto end = [](const std::string& s) { return s.size() > 600 ? s.substr(s.size() - 600) : s; };
  return std::string(up ? "a guest exited" : "not booted within the limit") + "; ticks " +
         std::to_string(a.ticks()) + " and " + std::to_string(b.ticks()) + "\n--- serial 1:\n" + end(a.serial()) +
         "\n--- serial 2:\n" + end(b.serial());
}

inline uint64_t run_ns(int pid, int tid) {
  auto r = glue::ProcFs().run_ns(pid, tid);
  return r ? r.value() : 0;
}

}  // namespace usched::test
