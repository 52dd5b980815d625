/* The SPANK plugin: --usched=NAME and --usched-gang for srun, sbatch and
 * salloc. Kept in C because <slurm/spank.h> declares the hooks outside
 * extern "C" and SPANK_PLUGIN() gives plugin_name internal linkage under
 * C++; the work is done by step.cc behind step.h.
 *
 * Where it acts (remote context, slurmstepd, as root):
 *   init_post_opt   exports USCHED_SCHEDULER and USCHED_SOCKET to the tasks;
 *   task_post_fork  makes the step's scheduler (first task) and binds the
 *                   task. Slurm calls it after its task plugins set the
 *                   task's affinity and before the task may exec, so the
 *                   task never runs user code unplaced;
 *   exit            removes the step's scheduler or gang, also after
 *                   scancel or a failed step. */
#include <slurm/slurm.h> /* SLURM_EXTERN_CONT */
#include <slurm/spank.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "step.h"

SPANK_PLUGIN(usched, 1);

static char *opt_name = NULL;
static int opt_gang = 0;

static int opt_usched(int val, const char *optarg, int remote) {
  (void)val;
  (void)remote;
  if (!optarg || !*optarg) {
    slurm_error("usched: --usched needs the name of a scheduler (see `usched list`)");
    return -1;
  }
  free(opt_name);
  opt_name = strdup(optarg);
  return 0;
}

static int opt_usched_gang(int val, const char *optarg, int remote) {
  (void)val;
  (void)optarg;
  (void)remote;
  opt_gang = 1;
  return 0;
}

static struct spank_option options[] = {
    {"usched", "NAME",
     "Place each task in a child scheduler of usched scheduler NAME on the CPUs Slurm gave the step", 1, 0,
     opt_usched},
    {"usched-gang", NULL, "With --usched: run the step's tasks as one gang of NAME (all at once or not at all)", 0,
     0, opt_usched_gang},
    SPANK_OPTIONS_TABLE_END};

/* Registered in every context, so srun, sbatch and salloc all accept the
 * options and pass them on to slurmstepd. */
int slurm_spank_init(spank_t sp, int ac, char **av) {
  for (struct spank_option *o = options; o->name; o++) {
    if (spank_option_register(sp, o) != ESPANK_SUCCESS) {
      slurm_error("usched: cannot register --%s", o->name);
      return -1;
    }
  }
  if (spank_remote(sp)) {
    char err[512];
    if (usched_step_args(ac, av, err, sizeof err) < 0) {
      slurm_error("usched: %s", err);
      return -1;
    }
  }
  return 0;
}

static int describe(spank_t sp, struct usched_step *s, char **cores) {
  memset(s, 0, sizeof *s);
  s->scheduler = opt_name;
  s->gang = opt_gang;
  if (spank_get_item(sp, S_JOB_ID, &s->job_id) != ESPANK_SUCCESS ||
      spank_get_item(sp, S_JOB_STEPID, &s->step_id) != ESPANK_SUCCESS ||
      spank_get_item(sp, S_JOB_UID, &s->uid) != ESPANK_SUCCESS ||
      spank_get_item(sp, S_JOB_GID, &s->gid) != ESPANK_SUCCESS ||
      spank_get_item(sp, S_JOB_LOCAL_TASK_COUNT, &s->local_tasks) != ESPANK_SUCCESS ||
      spank_get_item(sp, S_STEP_ALLOC_CORES, cores) != ESPANK_SUCCESS) {
    slurm_error("usched: cannot read the job step's ids and cores from Slurm");
    return -1;
  }
  s->cores = *cores;
  return 0;
}

/* The extern step (PrologFlags=Contain) holds no tasks of the user's: it
 * adopts ssh sessions and is left where Slurm puts it. */
static int is_extern(spank_t sp) {
  uint32_t step = 0;
  return spank_get_item(sp, S_JOB_STEPID, &step) == ESPANK_SUCCESS && step == SLURM_EXTERN_CONT;
}

int slurm_spank_init_post_opt(spank_t sp, int ac, char **av) {
  (void)ac;
  (void)av;
  if (!opt_name || !spank_remote(sp) || is_extern(sp)) return 0;
  struct usched_step s;
  char *cores = NULL;
  char target[512], err[512];
  if (describe(sp, &s, &cores) < 0) return -1;
  if (usched_step_target(&s, target, sizeof target, err, sizeof err) < 0) {
    slurm_error("usched: %s", err);
    return -1;
  }
  spank_setenv(sp, "USCHED_SCHEDULER", target, 1);
  spank_setenv(sp, "USCHED_SOCKET", usched_step_socket(), 1);
  return 0;
}

int slurm_spank_task_post_fork(spank_t sp, int ac, char **av) {
  (void)ac;
  (void)av;
  if (!opt_name || is_extern(sp)) return 0;
  struct usched_step s;
  char *cores = NULL;
  pid_t pid = 0;
  char err[1024];
  if (describe(sp, &s, &cores) < 0) return -1;
  if (spank_get_item(sp, S_TASK_PID, &pid) != ESPANK_SUCCESS) {
    slurm_error("usched: cannot read the task's pid from Slurm");
    return -1;
  }
  if (usched_step_bind(&s, pid, err, sizeof err) < 0) {
    slurm_error("usched: --usched=%s%s: %s", opt_name, opt_gang ? " --usched-gang" : "", err);
    return -1;
  }
  return 0;
}

int slurm_spank_exit(spank_t sp, int ac, char **av) {
  (void)ac;
  (void)av;
  if (!opt_name || !spank_remote(sp) || is_extern(sp)) return 0;
  struct usched_step s;
  char *cores = NULL;
  char err[1024];
  if (describe(sp, &s, &cores) < 0) return -1;
  if (usched_step_end(&s, err, sizeof err) < 0) {
    slurm_error("usched: removing the step's scheduler: %s", err);
    return -1;
  }
  return 0;
}
