/* heartbeat.h - what a running rank leaves for whoever watches the run.
 *
 * Every rank replaces OUT/heartbeat/rank_RRRRR after each step (written to a .tmp and
 * renamed, so a reader never sees half a file): its pid, host, transport, the step it
 * finished, the wall-clock time, and how many times the run was restarted
 * (GPT2_RESTARTS, set by gpt2_supervise). The dashboard shows them; gpt2_supervise
 * reads the step a dead rank had reached. */
#ifndef GPT2_TRAINER_HEARTBEAT_H
#define GPT2_TRAINER_HEARTBEAT_H

#include <stddef.h>

typedef struct {
  int rank, pid, restarts;
  long step, steps;
  double time; /* seconds since the epoch (CLOCK_REALTIME), when it was written */
  char host[64], transport[16];
} heartbeat;

/* Writes rank's heartbeat; 0, or -1 with err set (the caller may ignore it). */
int heartbeat_write(const char *out_dir, const heartbeat *hb, char *err, size_t errlen);
/* Reads rank's heartbeat: 0, or -1 when there is none (yet). */
int heartbeat_read(const char *out_dir, int rank, heartbeat *hb);
/* The restart count from GPT2_RESTARTS (0 when unset). */
int heartbeat_restarts(void);

/* After a resume from step `step`: drops the metrics records of later steps that the
 * interrupted run had written, so every step appears once (rewritten via a .tmp and a
 * rename). A missing file is fine. 0, or -1 with err set. */
int metrics_trim(const char *path, long step, char *err, size_t errlen);

/* The last step with a train_loss record in the metrics file, 0 when none. */
long metrics_last_step(const char *path);

#endif /* GPT2_TRAINER_HEARTBEAT_H */
