//go:build cgo

#include "media_cgo.h"

#include <stdio.h>
#include <string.h>

void vm_keep_line(char *dst, size_t size, const char *fmt, va_list vl) {
	char line[512];
	if (size > sizeof line) {
		size = sizeof line;
	}
	vsnprintf(line, size, fmt, vl);
	size_t n = strlen(line);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == ' ')) {
		line[--n] = 0;
	}
	if (n > 0) {
		memcpy(dst, line, n + 1);
	}
}
