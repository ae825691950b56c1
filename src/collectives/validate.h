#ifndef MLCOMM_COLLECTIVES_VALIDATE_H
#define MLCOMM_COLLECTIVES_VALIDATE_H

#include "core/internal.h"

/* Checks every argument of op for comm (fn names the public call in the sentence) and
 * marks op->in_place. Nothing is started or written on failure. */
mlcommResult_t mlcomm_validate(struct mlcomm_comm *comm, const char *fn, struct mlcomm_op *op);

#endif
