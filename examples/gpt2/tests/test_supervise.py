#!/usr/bin/env python3
"""gpt2_supervise and train_gpt2 --dashboard end to end, on a small model and the
synthetic shards of test_train.py.

usage: test_supervise.py CASE --trainer PATH --supervise PATH --mpirun PATH

CASE is one of
  exact      a supervised run in which a random rank is SIGKILLed three times, each at
             a random step (the test watches the heartbeats and kills the pid), ends
             with a final model and optimizer state bitwise equal to an uninterrupted
             run of the same steps; its metrics JSONL has every step exactly once, with
             bitwise the uninterrupted run's losses; supervisor.jsonl names each
             failure (rank, signal 9, step) and each restart, and the run ends "done"
  giveup     a rank that exits non-zero every time (an unreadable checkpoint to resume
             from): the supervisor logs the exit code, restarts --max-restarts times,
             then gives up with exit status 1; a trainer without --checkpoint-every is
             refused with a sentence
  dashboard  under tmux (a shell, send-keys, capture-pane): --dashboard draws the
             screen (status, a row per rank from the heartbeats, the loss sparkline,
             tokens/s, comm share, ETA) while the run goes; with rank 1 stopped by
             SIGSTOP for a while, "waiting: rank 1 silent for N s" while rank 0 waits;
             "status: done" at the end; with stdout in a file, plain lines without
             escape codes
  survive    train_gpt2 --sync diloco --survive at 3 ranks under mpirun --enable-recovery:
             a random rank (rank 0 included) is SIGKILLed at a random step; the other
             two shrink the communicator and finish the run without a restart, saying
             so; the metrics JSONL has every step once, the last checkpoint and the
             final model are written; --survive without diloco is refused
Exit status: 0 pass, 1 fail, 77 skipped (the reason printed).
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_train as tt  # noqa: E402  (the shards and the launcher's settings)

MPI_ARGS = ["--mpirun-arg", "--oversubscribe", "--mpirun-arg", "--allow-run-as-root",
            "--mpirun-arg", "--mca", "--mpirun-arg", "btl", "--mpirun-arg", "^openib"]
# 2 x 128 channels: about 8 ms a step here, slow enough to be hit at a chosen step
SHAPE = ["--depth", "2", "--channels", "128", "--heads", "2", "--seq-len", "32",
         "--vocab", "500"]
STEPS = 60
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL:", msg, flush=True)
    return cond


def trainer_args(train, out, extra=()):
    return (["-i", train, "-j", "none", "-b", "4", "-T", "32", "-n", str(STEPS),
             "--val-every", "0", "--sample-every", "0", "-t", "shm", "-o", out,
             "--plot", "none", "--lr", "1e-3", "--shuffle", "--checkpoint-every", "5",
             "--save", out + "/final.bin"] + SHAPE + list(extra))


def supervise_cmd(a, out, np_=2, extra_sup=(), extra=()):
    return ([a.supervise, "-n", str(np_), "--mpirun", a.mpirun, "--backoff", "0.2"] + MPI_ARGS +
            list(extra_sup) + ["--", a.trainer] + trainer_args(a.train, out, extra))


def read_heartbeat(out, rank):
    try:
        with open("%s/heartbeat/rank_%05d" % (out, rank)) as f:
            return dict(line.split(" ", 1) for line in f.read().split("\n") if " " in line)
    except OSError:
        return None


def train_records(path):
    """step -> the exact text of its train_loss, and how often each step was logged."""
    losses, counts = {}, {}
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            if "train_loss" not in rec:
                continue
            s = rec["step"]
            counts[s] = counts.get(s, 0) + 1
            losses[s] = line.split('"train_loss": ')[1].split(",")[0]
    return losses, counts


def events(out):
    with open(out + "/supervisor.jsonl") as f:
        return [json.loads(line) for line in f]


def case_exact(a, d):
    ref, sup = d + "/ref", d + "/sup"
    p = subprocess.run(supervise_cmd(a, ref, extra_sup=["--max-restarts", "0"]), env=tt.ENV,
                       capture_output=True, text=True, timeout=120)
    if not check(p.returncode == 0, "the uninterrupted run failed: %s" % p.stderr[-2000:]):
        return
    seed = int(os.environ.get("TEST_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    targets = sorted(rng.sample(range(3, STEPS - 8), 3))
    victims = [rng.randrange(2) for _ in targets]
    print("seed %d: SIGKILL rank %s at steps %s" % (seed, victims, targets), flush=True)
    job = subprocess.Popen(supervise_cmd(a, sup), env=tt.ENV, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, start_new_session=True)
    killed = []
    deadline = time.monotonic() + 150
    for k, (step, victim) in enumerate(zip(targets, victims)):
        while time.monotonic() < deadline and job.poll() is None:
            hb = read_heartbeat(sup, victim)
            if hb and int(hb["restarts"]) == k and int(hb["step"]) >= step:
                os.kill(int(hb["pid"]), signal.SIGKILL)
                killed.append((victim, int(hb["step"])))
                break
            time.sleep(0.001)
    try:
        out, err = job.communicate(timeout=max(1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        out, err = job.communicate()
        check(False, "the supervised run did not end in time")
    print("killed (rank, step after the heartbeat):", killed, flush=True)
    sys.stdout.write(err[-3000:])
    if not check(len(killed) == 3, "only %d of the 3 kills landed before the run ended" % len(killed)):
        return
    check(job.returncode == 0, "gpt2_supervise exited %s" % job.returncode)
    # bitwise: the final parameters, and the last checkpoint's AdamW state
    for name in ["final.bin", "step_%08d/model.bin" % STEPS, "step_%08d/optimizer.bin" % STEPS]:
        with open(ref + "/" + name, "rb") as f1, open(sup + "/" + name, "rb") as f2:
            check(f1.read() == f2.read(), "%s differs from the uninterrupted run's" % name)
    want, _ = train_records(ref + "/metrics.jsonl")
    got, counts = train_records(sup + "/metrics.jsonl")
    check(sorted(counts) == list(range(1, STEPS + 1)) and set(counts.values()) == {1},
          "metrics: steps logged other than once each: %s" %
          {s: c for s, c in counts.items() if c != 1} or sorted(counts))
    diff = [s for s in want if got.get(s) != want[s]]
    check(not diff, "losses differ from the uninterrupted run at steps %s" % diff[:10])
    ev = events(sup)
    fails = [e for e in ev if e["event"] == "failure"]
    restarts = [e for e in ev if e["event"] == "restart"]
    check(len(fails) == 3 and len(restarts) == 3 and ev[-1]["event"] == "done",
          "supervisor.jsonl: %s" % ev)
    for e, (victim, step) in zip(fails, killed):
        # the kill lands a moment after the heartbeat was read: that step or the next
        check(e["rank"] == victim and e["signal"] == 9 and e["step"] in (step, step + 1),
              "failure logged as %s; rank %d was killed after step %d" % (e, victim, step))
    for k, e in enumerate(restarts):
        check(e["restart"] == k + 1 and e["from_step"] % 5 == 0 and e["from_step"] <= killed[k][1],
              "restart logged as %s" % e)
    check("rank %d was killed by signal 9 (SIGKILL) after step %d" % (fails[0]["rank"],
                                                                     fails[0]["step"]) in err,
          "the supervisor's stderr does not say which rank died, how and when")
    print("3 kills survived: final model, optimizer state and every step's loss bitwise equal "
          "to the uninterrupted run; each step logged once")


def case_giveup(a, d):
    out = d + "/bad"
    os.makedirs(out + "/step_00000005")
    with open(out + "/latest", "w") as f:
        f.write("step_00000005\n")  # a checkpoint with nothing in it
    p = subprocess.run(supervise_cmd(a, out, extra_sup=["--max-restarts", "2"],
                                     extra=["--resume", out]),
                       env=tt.ENV, capture_output=True, text=True, timeout=120)
    check(p.returncode == 1, "gave up with exit status %d, expected 1" % p.returncode)
    ev = events(out)
    fails = [e for e in ev if e["event"] == "failure"]
    check(len(fails) == 3 and all(e["exit_code"] > 0 and e["signal"] == 0 for e in fails) and
          ev[-1]["event"] == "gave_up", "supervisor.jsonl: %s" % ev)
    check("exited with status" in p.stderr and "giving up after 2 restart(s)" in p.stderr,
          "stderr: %s" % p.stderr[-1500:])
    p = subprocess.run([a.supervise, "--", a.trainer, "-n", "3"], capture_output=True, text=True,
                       timeout=30)
    check(p.returncode == 2 and "--checkpoint-every" in p.stderr, "no --checkpoint-every: %d %s"
          % (p.returncode, p.stderr))
    p = subprocess.run([a.supervise, "--max-restarts", "x", "--", a.trainer], capture_output=True,
                       text=True, timeout=30)
    check(p.returncode == 2 and "--max-restarts 'x'" in p.stderr, "bad --max-restarts: %s" % p.stderr)
    print("non-zero exits: logged, restarted twice, then given up; bad command lines refused")


def tmux(*args, check_rc=True):
    p = subprocess.run(["tmux", "-L", TMUX_SOCKET] + list(args), capture_output=True, text=True,
                       timeout=30)
    if check_rc and p.returncode != 0:
        raise RuntimeError("tmux %s: %s" % (" ".join(args), p.stderr))
    return p.stdout


TMUX_SOCKET = "gpt2-dash-%d" % os.getpid()


def case_dashboard(a, d):
    if shutil.which("tmux") is None:
        print("SKIPPED: tmux is not installed (Debian package tmux; .ci/setup installs it)")
        sys.exit(77)
    out = d + "/dash"
    cmd = " ".join("'%s'" % x for x in supervise_cmd(a, out, extra=["--dashboard"]))
    env = " ".join("%s=%s" % kv for kv in [("OMP_NUM_THREADS", "1"), ("TERM", "xterm"),
                                           ("MLCOMM_TIMEOUT_MS", "60000")])
    tmux("new-session", "-d", "-s", "dash", "-x", "120", "-y", "40", "-c", d,
         "bash --norc --noprofile")
    try:
        # the marker is spelled apart on the command line, so only its output matches
        tmux("send-keys", "-t", "dash", "%s %s; echo EXIT\"\"=$?" % (env, cmd), "Enter")
        mid = done = stalled = ""
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            screen = tmux("capture-pane", "-p", "-t", "dash")
            if "status: running" in screen and "rank" in screen and not mid:
                mid = screen
                # rank 1 stops (SIGSTOP): rank 0 waits for it, and the screen must say so
                hb = read_heartbeat(out, 1)
                if check(hb, "rank 1 has no heartbeat"):
                    os.kill(int(hb["pid"]), signal.SIGSTOP)
                    t_stop = time.monotonic()
                    while time.monotonic() - t_stop < 10 and not stalled:
                        screen = tmux("capture-pane", "-p", "-t", "dash")
                        if "waiting: rank 1 silent for" in screen:
                            stalled = screen
                        time.sleep(0.1)
                    os.kill(int(hb["pid"]), signal.SIGCONT)
            if re.search(r"^EXIT=\d+", screen, re.M):
                done = screen
                break
            time.sleep(0.05)
        print("--- the screen while running:\n%s\n--- while rank 1 was stopped:\n%s\n"
              "--- at the end:\n%s" % (mid, stalled, done))
        check(mid, "no screen with 'status: running' was seen")
        check(stalled, "with rank 1 stopped, the screen never said 'waiting: rank 1 silent for'")
        check("EXIT=0" in done and "status: done" in done and "step %d/%d" % (STEPS, STEPS) in done,
              "the final screen does not say done")
        for screen in (mid, done):
            if not screen:
                continue
            rows = [l.split() for l in screen.splitlines()]
            table = [r for r in rows if len(r) >= 8 and r[0] in ("0", "1") and r[2] == "shm"]
            check(len(table) == 2, "the table has no row per rank: %s" % table)
            check(any(c in screen for c in "\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588"),
                  "no loss sparkline")
            for word in ("tokens/s", "comm", "ETA", "loss", "heartbeat", "restarts"):
                check(word in screen, "'%s' is not on the screen" % word)
        check(done.count("status:") == 1, "the screen was not redrawn in place")
    finally:
        tmux("kill-server", check_rc=False)
    # not a terminal: plain lines
    out2 = d + "/plain"
    p = subprocess.run(supervise_cmd(a, out2, extra=["--dashboard"]), env=tt.ENV,
                       capture_output=True, text=True, timeout=120)
    check(p.returncode == 0, "the plain run failed: %s" % p.stderr[-1500:])
    lines = [l for l in p.stdout.splitlines() if l.startswith("dashboard: ")]
    check(len(lines) == STEPS and "\033" not in p.stdout,
          "plain mode: %d dashboard lines (want %d), escape codes: %s" %
          (len(lines), STEPS, "\033" in p.stdout))
    check(lines and lines[-1].startswith("dashboard: done | step %d/%d" % (STEPS, STEPS)),
          "the last plain line: %s" % (lines[-1:] or None))
    print("dashboard: drawn in place under tmux while running and at the end; plain lines in a file")


def case_survive(a, d):
    out = d + "/survive"
    seed = int(os.environ.get("TEST_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    victim, at = rng.randrange(3), rng.randrange(4, 30)
    print("seed %d: SIGKILL rank %d after step %d" % (seed, victim, at), flush=True)
    args = trainer_args(a.train, out, ["--sync", "diloco", "--inner-steps", "5", "--survive"])
    cmd = [a.mpirun] + tt.MPI_ARGS + ["--enable-recovery", "-np", "3", a.trainer] + args
    job = subprocess.Popen(cmd, env=tt.ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, start_new_session=True)
    killed = None
    deadline = time.monotonic() + 90
    while killed is None and job.poll() is None and time.monotonic() < deadline:
        hb = read_heartbeat(out, victim)
        if hb and int(hb["step"]) >= at:
            os.kill(int(hb["pid"]), signal.SIGKILL)
            killed = int(hb["step"])
        time.sleep(0.001)
    try:
        text, _ = job.communicate(timeout=max(1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:  # a hang: the survivors did not carry on
        os.killpg(job.pid, signal.SIGKILL)
        text, _ = job.communicate()
        check(False, "the run did not end within 90 s")
    print("\n".join(l for l in text.splitlines() if not l.startswith(("step ", "|", "+"))))
    if not check(killed is not None, "the kill did not land before the run ended"):
        return
    said = re.search(r"^survive: rank (\d+) died in step (\d+); continuing on 2 ranks without a "
                     r"restart$", text, re.M)
    # after the heartbeat of step k: in step k's checkpoint, or in step k + 1 or k + 2
    check(said and int(said.group(1)) == victim and killed <= int(said.group(2)) <= killed + 2,
          "the survivors did not say that rank %d died after step %d" % (victim, killed))
    check("done: %d steps" % STEPS in text, "the run did not finish")
    _, counts = train_records(out + "/metrics.jsonl")
    check(sorted(counts) == list(range(1, STEPS + 1)) and set(counts.values()) == {1},
          "metrics: steps logged other than once each: %s" % sorted(counts.items())[:80])
    with open(out + "/latest") as f:
        check(f.read().strip() == "step_%08d" % STEPS, "latest does not name the last step")
    check(os.path.getsize(out + "/final.bin") > 1024, "no final model")
    p = subprocess.run([a.mpirun] + tt.MPI_ARGS + ["-np", "1", a.trainer, "--survive", "-n", "1"],
                       env=tt.ENV, capture_output=True, text=True, timeout=60)
    check(p.returncode != 0 and "--survive needs --sync diloco" in p.stderr,
          "--survive without diloco: %d %s" % (p.returncode, p.stderr[-500:]))
    print("rank %d killed after step %d: the survivors shrank and finished, each step logged once"
          % (victim, killed))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case", choices=["exact", "giveup", "dashboard", "survive"])
    ap.add_argument("--trainer", required=True)
    ap.add_argument("--supervise", required=True)
    ap.add_argument("--mpirun", required=True)
    a = ap.parse_args()
    for k in ("trainer", "supervise", "mpirun"):
        setattr(a, k, os.path.abspath(getattr(a, k)))
    d = tempfile.mkdtemp(prefix="gpt2_supervise_")
    try:
        a.train, _ = tt.make_data(d)
        {"exact": case_exact, "giveup": case_giveup, "dashboard": case_dashboard,
         "survive": case_survive}[a.case](a, d)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
