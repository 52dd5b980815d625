/* The usched C API: each call opens a connection to the default socket
 * ($USCHED_SOCKET, else /run/usched/usched.sock). Functions return -1 on
 * error; usched_last_error() then describes it (per thread). */
#ifndef USCHED_USCHED_H_
#define USCHED_USCHED_H_

#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Fork a child that is bound to scheduler `name` before it returns 0.
 * vcpu < 0 lets the daemon choose. Returns the child's pid in the parent. */
pid_t usched_rfork(const char* name, int vcpu);
/* Bind the calling process (all its threads). 0 on success. */
int usched_bind_self(const char* name, int vcpu);
/* Bind the calling thread only. 0 on success. */
int usched_bind_thread(const char* name, int vcpu);
/* Bind the calling thread into gang "SCHED/GANG" (one call per vCPU
 * thread). 0 on success. */
int usched_join_gang(const char* gang);
/* Add the threads of process `pid` whose name matches `glob` (fnmatch;
 * "CPU [0-9]*" takes QEMU's vCPU threads "CPU 0/KVM", "CPU 1/KVM", ...)
 * to gang "SCHED/GANG", now and as they appear; its other threads stay
 * bound to SCHED, never frozen. For VM monitors that do not call
 * usched_join_gang themselves. 0 on success. */
int usched_gang_add_threads(const char* gang, pid_t pid, const char* glob);
/* The message of the last error on this thread ("" if none). */
const char* usched_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* USCHED_USCHED_H_ */
