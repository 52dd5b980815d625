//! uschedd under systemd: readiness and log levels. Both are no-ops where
//! there is no systemd (no $NOTIFY_SOCKET, stderr not the journal).
#pragma once

#include <memory>
#include <string>

#include <spdlog/logger.h>

namespace usched::daemon {

/// The logger uschedd logs with: plain stderr, or, when $JOURNAL_STREAM
/// names stderr (systemd's StandardError=journal), stderr with each line
/// prefixed by its syslog priority (`<4>` for a warning, sd-daemon(3)), so
/// `journalctl -p warning` shows warnings and errors only.
std::shared_ptr<spdlog::logger> make_logger(const std::string& name);

/// True when stderr is the stream $JOURNAL_STREAM names (device:inode).
bool stderr_is_journal();

/// sd_notify(3): READY=1 with a STATUS= line once the socket answers;
/// STOPPING=1 when a stop begins. Nothing happens without $NOTIFY_SOCKET.
void notify_ready(const std::string& status);
void notify_stopping();

}  // namespace usched::daemon
