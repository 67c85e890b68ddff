/*
 * why: the one formatter of failure reasons. Modules that explain a
 * refusal write it into a caller's (char *why, size_t whylen) buffer;
 * these write there, truncating, always NUL-terminated, and do nothing
 * when the caller passed no buffer (why NULL or whylen 0). Thread safe
 * (the buffer is the caller's).
 */
#ifndef CONSUMA_WHY_H
#define CONSUMA_WHY_H

#include <stdarg.h>
#include <stddef.h>

/* Replaces why's text with fmt's. */
void why_set(char *why, size_t whylen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void why_vset(char *why, size_t whylen, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
/* Appends fmt's text to why's (a full buffer stays as it is). */
void why_append(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void why_vappend(char *why, size_t whylen, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#endif
