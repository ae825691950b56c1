/* dashboard.h - train_gpt2 --dashboard: one terminal screen on rank 0, redrawn as the
 * run goes (plain ANSI: home, clear, lines), with the status, a table of every rank
 * from its heartbeat (host, transport, step, last heartbeat, restarts), a sparkline of
 * the loss, tokens/s, the communication share and the ETA. A thread of its own redraws
 * it after each step and every second, so that while rank 0 waits for a rank that
 * stopped, the screen says which one has been silent and for how long (the thread only
 * reads files and prints: it makes no MPI or mlcomm call). When stdout is not a
 * terminal it prints one plain line per step instead. */
#ifndef GPT2_TRAINER_DASHBOARD_H
#define GPT2_TRAINER_DASHBOARD_H

#include <pthread.h>

#define DASH_HISTORY 64

typedef enum { DASH_OFF = 0, DASH_AUTO, DASH_SCREEN, DASH_PLAIN } dash_mode;

typedef struct {
  int screen; /* 1: redraw the screen; 0: plain lines */
  const char *out_dir;
  int nranks;
  long start_step;
  float loss[DASH_HISTORY];
  int nloss; /* losses kept (the last DASH_HISTORY) */
  double tokens_timed, seconds_timed;
  /* the screen's thread and what it draws */
  pthread_t thread;
  int have_thread, stop, fresh; /* fresh: a step came since the last redraw */
  pthread_mutex_t lock;
  pthread_cond_t wake;
  long step, steps;
  float last_loss;
  double tok_s, comm, step_seconds, eta_seconds;
  char status[16];
} dashboard;

/* Decides screen or plain lines for mode (auto: a screen when stdout is a terminal;
 * under mpirun, whose ranks always write to a pseudo-terminal, when mpirun's is). */
void dashboard_open(dashboard *d, dash_mode mode, const char *out_dir, int nranks, long start_step);

typedef struct {
  long step, steps;
  float loss;
  double seconds, comm_seconds; /* this step, and its communication */
  long tokens;                  /* trained this step, every rank together */
  const char *status;           /* "running", "done" */
} dash_step;

void dashboard_step(dashboard *d, const dash_step *s);
/* Draws the last screen and stops the thread. */
void dashboard_close(dashboard *d);

#endif /* GPT2_TRAINER_DASHBOARD_H */
