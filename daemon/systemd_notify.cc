#include "systemd_notify.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>

#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#if USCHED_HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

namespace usched::daemon {
namespace {

// The syslog priority of a level, as sd-daemon(3)'s SD_WARNING etc.
int priority(spdlog::level::level_enum l) {
  switch (l) {
    case spdlog::level::trace:
    case spdlog::level::debug: return 7;
    case spdlog::level::info: return 6;
    case spdlog::level::warn: return 4;
    case spdlog::level::err: return 3;
    case spdlog::level::critical: return 2;
    default: return 6;
  }
}

// One line per message on stderr, "<N>" first; the journal keeps the time,
// the pid and the unit, so the line carries only the level word and text.
class JournalStderrSink final : public spdlog::sinks::base_sink<std::mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t text;
    formatter_->format(msg, text);
    std::fprintf(stderr, "<%d>%.*s", priority(msg.level), static_cast<int>(text.size()), text.data());
    std::fflush(stderr);
  }
  void flush_() override { std::fflush(stderr); }
};

}  // namespace

bool stderr_is_journal() {
  const char* js = std::getenv("JOURNAL_STREAM");
  if (js == nullptr) return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(js, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st {};
  if (::fstat(STDERR_FILENO, &st) != 0) return false;
  return static_cast<unsigned long long>(st.st_dev) == dev && static_cast<unsigned long long>(st.st_ino) == ino;
}

std::shared_ptr<spdlog::logger> make_logger(const std::string& name) {
  if (!stderr_is_journal()) return spdlog::stderr_color_mt(name);
  auto sink = std::make_shared<JournalStderrSink>();
  sink->set_pattern("%l: %v");
  auto logger = std::make_shared<spdlog::logger>(name, std::move(sink));
  spdlog::register_logger(logger);
  return logger;
}

void notify_ready(const std::string& status) {
#if USCHED_HAVE_LIBSYSTEMD
  (void)sd_notifyf(0, "READY=1\nSTATUS=%s", status.c_str());
#else
  (void)status;
#endif
}

void notify_stopping() {
#if USCHED_HAVE_LIBSYSTEMD
  (void)sd_notify(0, "STOPPING=1\nSTATUS=stopping");
#endif
}

}  // namespace usched::daemon
