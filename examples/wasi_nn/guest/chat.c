/*
 * chat.c - a WASI-NN guest that keeps one session across turns.
 *
 * usage: chat.wasm MODEL [JSON-CONFIG]   (one user turn per line of standard input)
 * Each turn sends the whole conversation as the prompt (the convention WasmEdge's chat
 * guests use) on the same execution context; the backend finds the conversation so far
 * in that context's KV cache and runs only the new turn. Replies stop at "\nUser:".
 * When the context fills, the oldest turns are dropped and the conversation goes on.
 */
#include <stdio.h>
#include <string.h>

#include "wasi_nn_guest.h"

static char conv[1 << 16];

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: chat MODEL [JSON-CONFIG]\n");
    return 2;
  }
  const char *cfg = argc == 3 ? argv[2] : "{}";
  const char *stop = "{\"reverse-prompt\": [\"\\nUser:\"]}";
  uint32_t g, ctx, len;
  int32_t rc = nn_load_by_name_with_config(argv[1], strlen(argv[1]), cfg, strlen(cfg), &g);
  if (rc != NN_SUCCESS || (rc = nn_init_execution_context(g, &ctx)) != NN_SUCCESS ||
      (rc = nn_set_text(ctx, 1, stop, strlen(stop))) != NN_SUCCESS) {
    fprintf(stderr, "chat: loading %s failed (wasi-nn error %d)\n", argv[1], rc);
    return 1;
  }
  char line[4096];
  int turn = 0;
  while (fgets(line, sizeof line, stdin)) {
    line[strcspn(line, "\n")] = 0;
    size_t used = strlen(conv);
    snprintf(conv + used, sizeof conv - used, "User: %s\nAssistant:", line);
    for (;;) {
      rc = nn_set_text(ctx, 0, conv, strlen(conv));
      if (rc == NN_SUCCESS) rc = nn_compute(ctx);
      if (rc != NN_PROMPT_TOO_LONG) break;
      char *next = strstr(conv + 1, "User: "); /* drop the oldest turn */
      if (!next) break;
      memmove(conv, next, strlen(next) + 1);
    }
    if (rc != NN_SUCCESS && rc != NN_CONTEXT_FULL) {
      fprintf(stderr, "chat: turn %d failed (wasi-nn error %d)\n", turn, rc);
      return 1;
    }
    char *reply, *counts;
    nn_get_text(ctx, 0, &reply, &len);
    nn_get_text(ctx, 1, &counts, &len);
    printf("Assistant:%s\n", reply);
    fprintf(stderr, "chat: turn %d %s\n", turn++, counts);
    used = strlen(conv);
    snprintf(conv + used, sizeof conv - used, "%s\n", reply);
    free(reply);
    free(counts);
  }
  return 0;
}
