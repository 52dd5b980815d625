/* The usched C API (libusched): bind processes and threads to uschedd's
 * schedulers, fork children that start placed, and make gangs.
 *
 * Each call opens a connection to uschedd's socket: the one set with
 * usched_set_socket(), else $USCHED_SOCKET, else /run/usched/usched.sock.
 * Functions return -1 on error; usched_last_error() then describes it and
 * usched_last_error_code() says what kind of error it was (per thread).
 * Link with `pkg-config --cflags --libs usched`, or in CMake
 * find_package(usched CONFIG) and usched::usched. See libusched(3). */
#ifndef USCHED_USCHED_H_
#define USCHED_USCHED_H_

#include <sys/types.h>

/* libusched is built with hidden visibility; only these are exported. */
#if defined(__GNUC__)
#define USCHED_API __attribute__((visibility("default")))
#else
#define USCHED_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes: the gRPC status code numbers, so a code read here means what
 * the same code means from any other gRPC client of uschedd. */
enum usched_code {
  USCHED_OK = 0,
  USCHED_INVALID_ARGUMENT = 3,    /* a malformed name, pid or vcpu */
  USCHED_NOT_FOUND = 5,           /* no such scheduler, gang or member */
  USCHED_ALREADY_EXISTS = 6,      /* a gang of that name exists */
  USCHED_PERMISSION_DENIED = 7,   /* the caller may not do this */
  USCHED_RESOURCE_EXHAUSTED = 8,  /* a daemon limit; fork() failing for lack of memory */
  USCHED_FAILED_PRECONDITION = 9, /* the request does not fit the current state */
  USCHED_INTERNAL = 13,           /* anything else, including system calls that failed here */
  USCHED_UNAVAILABLE = 14         /* uschedd is not running or does not answer */
};

/* Fork a child that is bound to scheduler `name` before it returns 0.
 * vcpu < 0 lets the daemon choose. Returns the child's pid in the parent. */
USCHED_API pid_t usched_rfork(const char* name, int vcpu);
/* Bind the calling process (all its threads). 0 on success. */
USCHED_API int usched_bind_self(const char* name, int vcpu);
/* Bind the calling thread only. 0 on success. */
USCHED_API int usched_bind_thread(const char* name, int vcpu);
/* Bind process `pid` (tid 0: all its threads) or its thread `tid` to
 * `name`; vcpu < 0 lets the daemon choose. 0 on success. */
USCHED_API int usched_bind_pid(const char* name, pid_t pid, pid_t tid, int vcpu);
/* Return process `pid` (tid 0) or thread `tid` to where it came from.
 * 0 on success. */
USCHED_API int usched_unbind(pid_t pid, pid_t tid);
/* Bind the calling thread into gang "SCHED/GANG" (one call per vCPU
 * thread). 0 on success. */
USCHED_API int usched_join_gang(const char* gang);
/* Create gang "SCHED/GANG". quantum_ms <= 0: the daemon's default (20 ms);
 * width <= 0: all of the scheduler's vcpus. 0 on success. */
USCHED_API int usched_gang_create(const char* gang, int quantum_ms, int width);
/* Destroy gang "SCHED/GANG" (its members stay bound to the scheduler). */
USCHED_API int usched_gang_destroy(const char* gang);
/* Add process `pid` (tid 0: all its threads) or its thread `tid` to gang
 * "SCHED/GANG". 0 on success. */
USCHED_API int usched_gang_add(const char* gang, pid_t pid, pid_t tid);
/* Add the threads of process `pid` whose name matches `glob` (fnmatch;
 * "CPU [0-9]*" takes QEMU's vCPU threads "CPU 0/KVM", "CPU 1/KVM", ...)
 * to gang "SCHED/GANG", now and as they appear; its other threads stay
 * bound to SCHED, never frozen. For VM monitors that do not call
 * usched_join_gang themselves. 0 on success. */
USCHED_API int usched_gang_add_threads(const char* gang, pid_t pid, const char* glob);

/* Schedulers. */
/* Create scheduler `name` ("PARENT/CHILD") on `pool`, given in the parent's
 * vcpu numbers ("cpu0 cpu2", "cpu0-3", "cpu*"); lwktpri < 0: the default
 * (6); locked != 0 pins members to one vcpu each. 0 on success. */
USCHED_API int usched_sched_create(const char* name, const char* pool, int lwktpri, int locked);
/* Hand scheduler `name` (and what is below it) to uid/gid; gid
 * (gid_t)-1 keeps the group. 0 on success. */
USCHED_API int usched_sched_chown(const char* name, uid_t uid, gid_t gid);
/* Destroy scheduler `name`. force != 0: its children go with it and its
 * members move to the parent; force == 0 fails on a scheduler in use. */
USCHED_API int usched_sched_destroy(const char* name, int force);

/* What usched_sched_get() reports of a scheduler. */
struct usched_sched_info {
  uid_t owner_uid;
  gid_t owner_gid;
  int lwktpri;      /* its priority level (6 when none was given) */
  int locked;       /* members pinned to one vcpu each */
  int nvcpus;       /* number of vcpus */
  char cpus[1024];  /* its physical CPUs, "0-3,6" */
  char vcpus[4096]; /* each vcpu as INDEX:CPUS, space separated: "0:0 1:2-3" */
};
/* Fill `info` with scheduler `name`. Fails with USCHED_RESOURCE_EXHAUSTED
 * if a list does not fit its field. 0 on success. */
USCHED_API int usched_sched_get(const char* name, struct usched_sched_info* info);

/* Use the daemon at socket `path` from now on, for every thread (the path
 * is copied). NULL or "" returns to $USCHED_SOCKET / the default. */
USCHED_API int usched_set_socket(const char* path);
/* The socket the next call will use. The pointer stays valid on this
 * thread until its next call of usched_socket(). */
USCHED_API const char* usched_socket(void);

/* The message of the last error on this thread ("" if none). */
USCHED_API const char* usched_last_error(void);
/* The code of the last error on this thread (USCHED_OK if none). */
USCHED_API int usched_last_error_code(void);
/* "NOT_FOUND" for USCHED_NOT_FOUND, ...; "UNKNOWN" for other numbers. */
USCHED_API const char* usched_code_name(int code);

#ifdef __cplusplus
}
#endif

#endif /* USCHED_USCHED_H_ */
