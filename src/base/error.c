/*
 * Per-thread error state. Every failing function records a code, a message
 * and optionally the upstream cause (SQLite rc, errno, HTTP status) in a
 * _Thread_local sl_error, and returns the code; callers read it back with
 * sl_error_last(). Messages are formatted into a scratch buffer first so a
 * caller may pass the current message as an argument (as sl_error_wrap
 * does). errno is preserved across these calls.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "sluice/base.h"

static _Thread_local sl_error last_error;

const char *sl_strerror(int code)
{
	switch (code) {
	case SL_OK:
		return "ok";
	case SL_EINVAL:
		return "invalid argument";
	case SL_ENOMEM:
		return "out of memory";
	case SL_ENOTFOUND:
		return "not found";
	case SL_EEXISTS:
		return "already exists";
	case SL_ECORRUPT:
		return "corrupt data";
	case SL_EVERIFY:
		return "verification failed";
	case SL_ETOOLARGE:
		return "too large";
	case SL_EIO:
		return "I/O error";
	case SL_ETIMEOUT:
		return "timed out";
	case SL_ECONFLICT:
		return "conflict";
	case SL_EBUSY:
		return "busy";
	case SL_EINTERNAL:
		return "internal error";
	case SL_EAUTH:
		return "refused by remote";
	case SL_EUNAVAILABLE:
		return "unavailable";
	default:
		return "unknown error";
	}
}

/* Copy src into dst (cap bytes), always NUL-terminated. */
static void copy_string(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);
	if (n >= cap)
		n = cap - 1;
	memmove(dst, src, n);
	dst[n] = '\0';
}

static void format_message(char *out, size_t cap, const char *fmt, va_list ap)
{
	if (!fmt) {
		out[0] = '\0';
		return;
	}
	if (vsnprintf(out, cap, fmt, ap) < 0)
		copy_string(out, cap, "(unformattable message)");
}

int sl_error_setv(int code, const char *fmt, va_list ap)
{
	int saved_errno = errno;
	char message[SL_ERROR_MSG_MAX];

	format_message(message, sizeof(message), fmt, ap);
	last_error.code = code;
	copy_string(last_error.message, sizeof(last_error.message), message);
	last_error.cause[0] = '\0';
	errno = saved_errno;
	return code;
}

int sl_error_set(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	sl_error_setv(code, fmt, ap);
	va_end(ap);
	return code;
}

int sl_error_set_cause(int code, const char *cause, const char *fmt, ...)
{
	int saved_errno = errno;
	char cause_copy[SL_ERROR_CAUSE_MAX];
	va_list ap;

	/* The cause may point into last_error itself; copy it before the
	 * message is replaced. */
	copy_string(cause_copy, sizeof(cause_copy), cause ? cause : "");
	va_start(ap, fmt);
	sl_error_setv(code, fmt, ap);
	va_end(ap);
	copy_string(last_error.cause, sizeof(last_error.cause), cause_copy);
	errno = saved_errno;
	return code;
}

int sl_error_wrap(const char *fmt, ...)
{
	int saved_errno = errno;
	char context[SL_ERROR_MSG_MAX];
	char message[SL_ERROR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	format_message(context, sizeof(context), fmt, ap);
	va_end(ap);
	copy_string(message, sizeof(message), context);
	if (last_error.message[0] != '\0') {
		size_t used = strlen(message);
		copy_string(message + used, sizeof(message) - used, ": ");
		used = strlen(message);
		copy_string(message + used, sizeof(message) - used, last_error.message);
	}
	copy_string(last_error.message, sizeof(last_error.message), message);
	errno = saved_errno;
	return last_error.code;
}

const sl_error *sl_error_last(void)
{
	return &last_error;
}

void sl_error_clear(void)
{
	last_error.code = SL_OK;
	last_error.message[0] = '\0';
	last_error.cause[0] = '\0';
}
