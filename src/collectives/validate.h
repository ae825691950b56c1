#ifndef MLCOMM_COLLECTIVES_VALIDATE_H
#define MLCOMM_COLLECTIVES_VALIDATE_H

#include "core/internal.h"

/* Checks every argument of op for comm (fn names the public call in the sentence) and
 * marks op->in_place. Nothing is started or written on failure. */
mlcommResult_t mlcomm_validate(struct mlcomm_comm *comm, const char *fn, struct mlcomm_op *op);

/* Bytes of sendbuff and recvbuff this rank reads/writes for op (0 when unused). */
void mlcomm_op_extents(const struct mlcomm_comm *comm, const struct mlcomm_op *op,
                       size_t *send_len, size_t *recv_len);

#endif
