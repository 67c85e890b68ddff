/*
 * why: failure reasons into a caller's buffer (see why.h).
 */
#include "why.h"

#include <stdio.h>
#include <string.h>

void why_vset(char *why, size_t whylen, const char *fmt, va_list ap)
{
	if (why == NULL || whylen == 0)
		return;
	if (vsnprintf(why, whylen, fmt, ap) < 0)
		why[0] = '\0';
}

void why_set(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	why_vset(why, whylen, fmt, ap);
	va_end(ap);
}

void why_vappend(char *why, size_t whylen, const char *fmt, va_list ap)
{
	size_t len;

	if (why == NULL || whylen == 0)
		return;
	len = strnlen(why, whylen);
	if (len + 1 >= whylen)
		return;
	if (vsnprintf(why + len, whylen - len, fmt, ap) < 0)
		why[len] = '\0';
}

void why_append(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	why_vappend(why, whylen, fmt, ap);
	va_end(ap);
}
