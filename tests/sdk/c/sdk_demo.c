/* Built by sdk_test.sh outside the source tree against an installed
 * libusched, with `cc sdk_demo.c $(pkg-config --cflags --libs usched)`.
 * Usage: sdk_demo SOCKET SCHED GANG
 * Prints what a user of the C API sees; exits 0 when each step behaved. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <usched/usched.h>

/* Cpus_allowed_list of /proc/self/task/TID/status (tid 0: the process). */
static void cpus_allowed(pid_t tid, char* out, size_t n) {
  char path[64], line[256];
  if (tid) snprintf(path, sizeof path, "/proc/self/task/%d/status", (int)tid);
  else snprintf(path, sizeof path, "/proc/self/status");
  out[0] = '\0';
  FILE* f = fopen(path, "r");
  if (!f) return;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "Cpus_allowed_list:", 18) == 0) {
      char* v = line + 18;
      v += strspn(v, " \t");
      v[strcspn(v, "\n")] = '\0';
      snprintf(out, n, "%s", v);
    }
  }
  fclose(f);
}

static const char* g_gang;
static int g_join_rc;
static char g_thread_cpus[256];

static void* vcpu_thread(void* arg) {
  (void)arg;
  g_join_rc = usched_join_gang(g_gang);
  if (g_join_rc == 0) {
    printf("thread %d joined %s\n", (int)gettid(), g_gang);
    fflush(stdout);
  }
  cpus_allowed(gettid(), g_thread_cpus, sizeof g_thread_cpus);
  /* Stay in the gang until the test has looked at it from outside. */
  char buf[16];
  if (fgets(buf, sizeof buf, stdin) == NULL) { /* EOF: done as well */ }
  return NULL;
}

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: sdk_demo SOCKET SCHED GANG\n");
    return 2;
  }
  int ok = 1;
  usched_set_socket(argv[1]);

  /* rfork: the child is placed before its first line runs. */
  pid_t pid = usched_rfork(argv[2], -1);
  if (pid < 0) {
    fprintf(stderr, "usched_rfork: %s: %s\n", usched_code_name(usched_last_error_code()), usched_last_error());
    return 1;
  }
  if (pid == 0) {
    char cpus[256];
    cpus_allowed(0, cpus, sizeof cpus);
    printf("child cpus %s\n", cpus);
    fflush(stdout);
    _exit(0);
  }
  int st = 0;
  if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) ok = 0;

  /* A thread joins the gang, as a VM monitor's vCPU thread does. */
  g_gang = argv[3];
  pthread_t t;
  pthread_create(&t, NULL, vcpu_thread, NULL);
  pthread_join(t, NULL);
  if (g_join_rc != 0) {
    fprintf(stderr, "usched_join_gang: %s: %s\n", usched_code_name(usched_last_error_code()), usched_last_error());
    ok = 0;
  }
  printf("thread cpus %s\n", g_thread_cpus);

  /* A scheduler that does not exist: NOT_FOUND, told apart by its code. */
  if (usched_bind_self("no-such-scheduler", -1) == 0) {
    printf("bind to no-such-scheduler succeeded\n");
    ok = 0;
  } else {
    printf("bad name: %s: %s\n", usched_code_name(usched_last_error_code()), usched_last_error());
    if (usched_last_error_code() != USCHED_NOT_FOUND) ok = 0;
  }
  /* No daemon at a socket: UNAVAILABLE. */
  usched_set_socket("/nonexistent/usched.sock");
  if (usched_bind_self("NORM", -1) == 0) {
    ok = 0;
  } else {
    printf("no daemon: %s\n", usched_code_name(usched_last_error_code()));
    if (usched_last_error_code() != USCHED_UNAVAILABLE) ok = 0;
  }
  printf("%s\n", ok ? "OK" : "FAILED");
  return ok ? 0 : 1;
}
