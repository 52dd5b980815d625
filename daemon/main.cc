//! uschedd: owns the tree of schedulers and serves the usched API on a unix
//! socket. One io_context thread is the strand every state change runs on;
//! gRPC's threads post to it and wait.
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <thread>

#include <CLI/CLI.hpp>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>

#include "asio.h"
#include "engine.h"
#include "ops.h"
#include "place.h"
#include "server.h"
#include "systemd_notify.h"
#include "usched/glue/glue.h"
#include "usched/glue/guardian.h"
#include "usched/place.h"

#ifndef USCHED_VERSION
#define USCHED_VERSION "0.1.0"
#endif

// The gRPC server, once stopped, until the process exits (see the end of
// main). Not static: a store the compiler may not drop.
grpc::Server* g_server_left_to_exit = nullptr;

int main(int argc, char** argv) {
  // The guardian (usched/glue/guardian.h) is this binary started again by
  // uschedd itself; not an option a person gives.
  if (argc == 3 && std::string(argv[1]) == "--guardian") return usched::glue::guardian_main(argv[2]);
  CLI::App app{"uschedd: nested CPU schedulers for Linux (usched daemon)"};
  app.footer(
      "Examples:\n"
      "  uschedd                                   # default socket, state and glue\n"
      "  uschedd --socket /tmp/u.sock --state-dir /tmp/ustate --glue fake\n"
      "  uschedd --cleanup-on-exit                 # return every member on stop\n"
      "  uschedd --cgroup-driver systemd           # slices and scopes through systemd (docs/systemd.md)\n"
      "  uschedd --foreground --config /etc/usched/usched.conf   # as the systemd unit runs it\n"
      "  uschedd --metrics 127.0.0.1:9464          # Prometheus text on http://127.0.0.1:9464/metrics\n"
      "  kill -HUP $(pidof uschedd)                # re-apply the config file\n"
      "Config: usched lines ('usched NORM on cpu* lwktpri 6'), '#' comments; see usched(1) apply.\n"
      "Logs go to stderr (the journal under systemd); --log-level sets the level.");
  std::string socket = "/run/usched/usched.sock";
  std::string state_dir = "/var/lib/usched";
  std::string glue_kind = "auto";
  std::string log_level = "info";
  usched::glue::Options go;
  bool cleanup = false, no_defaults = false, version = false, teardown = false;
  app.add_option("--socket", socket, "Unix socket to serve the API on")->capture_default_str();
  app.add_option("--state-dir", state_dir, "Where the desired state is kept")->capture_default_str();
  app.add_option("--glue", glue_kind, "Kernel glue: auto, v2, v1, affinity, fake or systemd")->capture_default_str();
  std::string driver = "auto";
  app.add_option("--cgroup-driver", driver,
                 "auto: systemd when PID 1 is systemd and answers on the system bus, else cgroupfs; systemd: "
                 "slices and scopes through systemd (docs/systemd.md); cgroupfs: the --glue back ends")
      ->check(CLI::IsMember({"auto", "systemd", "cgroupfs"}))
      ->capture_default_str();
  app.add_option("--cgroup-root", go.cgroup_root, "cgroup file system root")->capture_default_str();
  app.add_option("--proc-root", go.proc_root, "/proc root")->capture_default_str();
  app.add_option("--sys-root", go.sys_root, "/sys root")->capture_default_str();
  app.add_option("--cgroup-top", go.top, "Our directory in each cgroup hierarchy")->capture_default_str();
  app.add_option("--fake-log", go.fake_log, "Fake glue: log every operation to this file");
  app.add_option("--fake-fail", go.fake_fail, "Fake glue: OP[:SUBSTR]=ERRNO,... makes operations fail");
  app.add_option("--fake-cpus", go.fake_cpus, "Fake glue: the CPUs to pretend the machine has")->capture_default_str();
  app.add_option("--freeze-timeout-ms", go.freeze_timeout_ms,
                 "How long a gang freeze may take to be confirmed (0: the RR time slice plus a tick, >= 40 ms)")
      ->check(CLI::Range(0, 60'000))
      ->capture_default_str();
  app.add_flag("--cleanup-on-exit", cleanup, "On stop, return members and remove our cgroups");
  app.add_flag("--teardown", teardown,
               "Do not serve: return every member of the saved state and remove our cgroups, then exit");
  usched::daemon::EngineOptions eo;
  int max_request_bytes = 64 * 1024;
  app.add_option("--max-entities-per-owner", eo.max_entities_per_owner,
                 "Schedulers one non-root user may own (0: no limit)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max-members-per-entity", eo.max_members_per_entity,
                 "Members one scheduler may have (0: no limit)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max-request-bytes", max_request_bytes,
                 "Largest request the daemon reads; larger ones fail with RESOURCE_EXHAUSTED")
      ->capture_default_str()
      ->check(CLI::Range(1024, 64 * 1024 * 1024));
  usched::daemon::ServiceLimits limits;
  app.add_option("--max-connections-per-uid", limits.max_connections_per_uid,
                 "Connections one non-root user may hold open (0: no limit)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max-watchers-per-uid", limits.max_watchers_per_uid,
                 "Watch streams one non-root user may hold open (0: no limit)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--no-defaults", no_defaults, "Do not create IDLE, NORM and REAL on a first start");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")->capture_default_str();
  app.add_flag("--version", version, "Print the version and exit");
  usched::daemon::OpsOptions ops;
  usched::daemon::add_ops_options(app, ops);
  CLI11_PARSE(app, argc, argv);
  if (version) {
    std::cout << "uschedd " << USCHED_VERSION << "\n";
    return 0;
  }

  // Under systemd, each line carries its level for the journal.
  auto logger = usched::daemon::make_logger("uschedd");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(log_level));

  auto kind = usched::glue::parse_kind(glue_kind);
  if (!kind) {
    std::cerr << "uschedd: --glue: " << kind.status().message() << "\n";
    return 2;
  }
  go.kind = *kind;
  if (driver == "systemd") {
    if (go.kind != usched::glue::Kind::kAuto && go.kind != usched::glue::Kind::kSystemd) {
      std::cerr << "uschedd: --cgroup-driver systemd and --glue " << glue_kind << " contradict each other\n";
      return 2;
    }
    go.kind = usched::glue::Kind::kSystemd;
  } else if (driver == "cgroupfs" && go.kind == usched::glue::Kind::kSystemd) {
    std::cerr << "uschedd: --cgroup-driver cgroupfs and --glue systemd contradict each other\n";
    return 2;
  } else if (driver == "auto" && go.kind == usched::glue::Kind::kAuto) {
    // An explicit --glue wins; otherwise systemd's tree is systemd's.
    auto [yes, why] = usched::glue::probe_systemd(go);
    spdlog::info("cgroup driver: {} ({})", yes ? "systemd" : "cgroupfs", why);
    if (yes) go.kind = usched::glue::Kind::kSystemd;
  }
  if (go.kind == usched::glue::Kind::kAuto) {
    auto [k, why] = usched::glue::probe(go);
    spdlog::info("glue: {} ({})", usched::glue::kind_name(k), why);
    go.kind = k;
  }
  auto glue = usched::glue::make_glue(go);
  if (!glue) {
    spdlog::error("glue {}: {}", usched::glue::kind_name(go.kind), glue.status().message());
    return 1;
  }

  ::umask(022);
  // Every client connection is an fd: take the hard limit, not the soft
  // 1024 a shell hands down (the per-uid connection limit keeps one user
  // from taking them all).
  if (rlimit rl{}; ::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = std::min<rlim_t>(rl.rlim_max, 65536);
    if (rl.rlim_cur > 0) (void)::setrlimit(RLIMIT_NOFILE, &rl);
  }
  asio::io_context io;
  eo.state_dir = state_dir;
  eo.defaults = !no_defaults;
  const std::string config = usched::daemon::config_path(ops);
  if (!config.empty()) eo.defaults = false;  // the config says what exists
  usched::daemon::Engine engine(io, std::move(*glue), eo);
  if (usched::Status s = engine.start(); !s) {
    spdlog::error("cannot start: {}", s.message());
    return 1;
  }

  if (teardown) {
    engine.stop(true);
    return 0;
  }
  if (!config.empty()) {
    if (usched::Status s = usched::daemon::apply_config_file(engine, config, "start-up"); !s) {
      spdlog::error("cannot start: config not applied: {}", s.message());
      engine.stop(false);
      return 1;
    }
  }

  usched::daemon::Service service(io, engine, limits);
  usched::daemon::Acceptor acceptor(io, service);
  if (usched::Status s = acceptor.listen(socket); !s) {
    spdlog::error("cannot serve: {}", s.message());
    engine.stop(false);
    return 1;
  }
  // Beside it, the placement socket: a process placing itself (an rfork
  // child, `usched run`) without gRPC (usched/place.h).
  usched::daemon::PlaceListener place(io, engine, limits);
  if (usched::Status s = place.listen(usched::place::socket_of(socket)); !s) {
    spdlog::error("cannot serve: {}", s.message());
    acceptor.close();
    engine.stop(false);
    return 1;
  }
  // gRPC's standard health service (grpc.health.v1.Health) and server
  // reflection, so liveness probes and generic gRPC tools work without our
  // proto. Both must be enabled before the builder is made.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.RegisterService(&service);
  builder.SetMaxReceiveMessageSize(max_request_bytes);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) {
    spdlog::error("cannot start the gRPC server");
    engine.stop(false);
    return 1;
  }
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  if (health != nullptr) health->SetServingStatus("usched.v1.Usched", true);
  acceptor.start(server.get());
  place.start();
  usched::daemon::Ops ops_service(io, engine, ops);
  if (usched::Status s = ops_service.start(); !s) {
    spdlog::error("cannot start: {}", s.message());
    acceptor.close();
    place.close();
    server->Shutdown();
    engine.stop(false);
    return 1;
  }
  spdlog::info("uschedd {} serving on {} (state in {})", USCHED_VERSION, socket, state_dir);
  usched::daemon::notify_ready("serving on " + socket);  // Type=notify: the socket answers now

  asio::signal_set signals(io, SIGTERM, SIGINT);
  std::signal(SIGPIPE, SIG_IGN);
  std::thread stopper;
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    spdlog::info("signal {}: stopping", sig);
    usched::daemon::notify_stopping();
    acceptor.close();
    place.close();
    ops_service.stop();
    service.shutting_down();
    if (health != nullptr) health->Shutdown();  // probes see NOT_SERVING from here on
    // Shutdown waits for handlers that wait on this strand: call it from
    // another thread while the loop keeps running, then finish here.
    stopper = std::thread([&] {
      server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
      asio::post(io, [&] {
        engine.stop(cleanup);
        io.stop();
      });
    });
  });
  io.run();
  if (stopper.joinable()) stopper.join();
  server->Wait();
  spdlog::info("stopped");
  // Everything of ours has stopped and is saved. The server's destructor
  // would end gRPC's library (grpc_shutdown), which waits up to 10 s for
  // the connections it has not finished tearing down: those of Watch
  // readers that stopped reading can hold it that long, and uschedd with
  // it. The server is left to the process's exit instead, reachable from
  // a global so that LeakSanitizer does not count it as lost.
  g_server_left_to_exit = server.release();
  return 0;
}
