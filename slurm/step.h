/* The narrow C interface between the SPANK shim (spank_usched.c, which
 * alone includes <slurm/spank.h>) and the part that talks to uschedd
 * (step.cc, through libusched's C API). Every function returns 0,
 * or -1 with a message a user can act on in `err`. */
#ifndef USCHED_SLURM_STEP_H_
#define USCHED_SLURM_STEP_H_

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

struct usched_step {
  const char* scheduler; /* --usched=NAME */
  int gang;              /* --usched-gang */
  uint32_t job_id;
  uint32_t step_id;
  uid_t uid;
  gid_t gid;
  const char* cores;     /* S_STEP_ALLOC_CORES: Slurm's core numbers on this node */
  uint32_t local_tasks;  /* tasks of the step on this node */
};

/* Checks the plugstack.conf arguments and remembers them. */
int usched_step_args(int argc, char** argv, char* err, size_t errlen);
/* uschedd's socket: socket= in plugstack.conf, else the client's default. */
const char* usched_step_socket(void);
/* The step's scheduler "NAME/jobJ.S", or under --usched-gang the gang
 * "NAME/jobJ.S", written to `out`. */
int usched_step_target(const struct usched_step* s, char* out, size_t outlen, char* err, size_t errlen);
/* Makes the step's scheduler (or gang) on first use, then binds `pid`
 * (all its threads) to it. */
int usched_step_bind(const struct usched_step* s, pid_t pid, char* err, size_t errlen);
/* Removes what usched_step_bind made, if anything. */
int usched_step_end(const struct usched_step* s, char* err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* USCHED_SLURM_STEP_H_ */
