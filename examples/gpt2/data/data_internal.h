/* Shared inside the data library. Not installed. */
#ifndef GPT2_DATA_INTERNAL_H
#define GPT2_DATA_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
/* snprintf into err when err is not NULL and errlen > 0. */
void gpt2_data_err(char *err, size_t errlen, const char *fmt, ...);

#endif
